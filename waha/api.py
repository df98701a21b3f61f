"""POST /api/v1/whatsapp/channels/ with `"provider": "waha"`: whatsapp's endpoint calls `connect_channel`
(registered in WahaConfig.ready(); whatsapp never imports waha). Owners and admins only (the view's
`write` role); the answer holds the webhook key once."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from core.errors import ServiceError
from crm.permissions import acting_user
from waha import sessions

FIELDS = ("server_url", "api_key", "session", "name")


def connect_channel(*, request: Request, data: Any) -> dict[str, Any]:
    values: dict[str, str] = {}
    for field in FIELDS:
        value = data.get(field, "") if hasattr(data, "get") else ""
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ServiceError("validation_error", f"{field} is a string.", field=field)
        values[field] = value
    connected = sessions.connect(
        tenant=request.tenant,  # type: ignore[attr-defined]
        server_url=values["server_url"],
        api_key=values["api_key"],
        session=values["session"],
        name=values["name"],
        actor=acting_user(request),
    )
    return {
        "id": connected.channel.pk,
        "provider": connected.channel.provider,
        "name": connected.channel.name,
        "status": connected.channel.status,
        "session_status": connected.waha_session.status,
        "webhook_url": connected.webhook_url,
        "webhook_key": connected.webhook_key,
    }
