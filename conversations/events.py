"""The one realtime entry point: services call these; each publishes on commit to the tenant's groups.

Consumers (conversations.consumers) receive them as `realtime.event` and forward the payload.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from conversations.groups import agents_group
from tenants.db import connection


def publish(payload: dict[str, Any], *, group: str | None = None) -> None:
    """Send to a group of the current tenant (default: all its agents) once the transaction commits."""
    target = group or agents_group(connection.schema_name)

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(target, {"type": "realtime.event", "payload": payload})

    transaction.on_commit(send)


def message_created(message: Any) -> None:
    publish({"type": "message.created", "conversation": message.conversation_id, "message": message.pk})


def message_updated(message: Any) -> None:
    publish(
        {
            "type": "message.updated",
            "conversation": message.conversation_id,
            "message": message.pk,
            "status": message.status,
        }
    )


def conversation_updated(conversation: Any, *, change: str = "updated") -> None:
    publish(
        {"type": f"conversation.{change}", "conversation": conversation.pk, "status": conversation.status}
    )
