"""The notification socket (/ws/notifications/): every staff page's bell listens here for its user's own
notifications. It joins only the control groups of crm.sessions (the user's and the session's), which
crm.services.notifications sends to; it hears nothing of the inbox's visibility groups, so a page that
is not the inbox costs one light socket.

Same access rules as the inbox socket: only a signed-in user of the host's tenant is accepted, a
sign-out or access change closes it (crm.sessions), and the session is looked up again now and then in
case that close message was lost. Payloads carry ids; the page fetches the rest over HTTP.
"""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from crm import sessions

SESSION_RECHECK_SECONDS = 30.0


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.closing = False
        self.groups_joined: list[str] = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=sessions.CLOSE_SIGNED_OUT)
            return
        schema = self.scope["schema_name"]
        self.recheck_at = time.monotonic() + SESSION_RECHECK_SECONDS
        groups = [sessions.account_group(schema, user.pk)]
        session_key = self.scope.get("session_key")
        if session_key:
            groups.append(sessions.session_group(schema, session_key))
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.pk})

    async def disconnect(self, code: int) -> None:
        await self._leave_groups()

    async def _leave_groups(self) -> None:
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_close(self, event: dict[str, Any]) -> None:
        await self._shut(int(event.get("code") or sessions.CLOSE_SIGNED_OUT))

    async def _shut(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        await self._leave_groups()
        await self.close(code=code)

    def _session_ended(self) -> bool:
        user = sessions.user_for_session(self.scope.get("session_key"))
        return user is None or user.pk != self.scope["user"].pk

    async def _still_allowed(self) -> bool:
        if self.closing:
            return False
        if time.monotonic() < self.recheck_at:
            return True
        self.recheck_at = time.monotonic() + SESSION_RECHECK_SECONDS
        schema = self.scope["schema_name"]

        def check() -> bool:
            with schema_context(schema):
                return self._session_ended()

        if await database_sync_to_async(check)():
            await self._shut(sessions.CLOSE_SIGNED_OUT)
            return False
        return True

    async def realtime_batch(self, event: dict[str, Any]) -> None:
        if not await self._still_allowed():
            return
        for payload in event.get("payloads", []):
            if str(payload.get("type", "")).startswith("notification."):
                await self.send_json(payload)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await self._still_allowed():
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
