from __future__ import annotations

from typing import Any

import structlog
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversations.groups import agents_group, user_group

log = structlog.get_logger("socket")

# Close codes in the 4000 range are ours: 4401 = not signed in to this tenant.
CLOSE_UNAUTHENTICATED = 4401


class InboxConsumer(AsyncJsonWebsocketConsumer):
    """An agent's live connection. Only signed-in users of the host's tenant are accepted."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        schema = self.scope["schema_name"]
        self.groups_joined = [agents_group(schema), user_group(schema, user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        log.info("socket_connected", user=user.pk)
        await self.send_json({"type": "hello", "user": user.pk})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def realtime_event(self, event: dict[str, Any]) -> None:
        """Events published by conversations.events arrive here and go to the browser as they are."""
        await self.send_json(event["payload"])
