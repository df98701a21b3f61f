"""WebSocket plumbing: host → tenant schema (outermost), then session authentication in that schema.

Only the schema name is kept in the scope; every DB call runs as database_sync_to_async inside
schema_context. connection.set_tenant is never called from async code.
"""

from __future__ import annotations

from typing import Any

import structlog
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django_tenants.utils import get_public_schema_name, schema_context

from config.middleware import request_id_from
from crm.sessions import user_for_session


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(_header(scope, b"cookie"))
    except Exception:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def resolve_schema(hostname: str) -> str | None:
    from tenants.models import Domain

    if hostname in settings.PUBLIC_HOSTS:
        return get_public_schema_name()
    with schema_context(get_public_schema_name()):
        domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
        if domain is None or not domain.tenant.is_active:
            return None
        return domain.tenant.schema_name


def load_user(schema: str, session_key: str | None) -> Any:
    """Django's session auth, run inside the tenant's schema: a cookie from another tenant finds nothing."""
    if not session_key:
        return AnonymousUser()
    with schema_context(schema):
        return user_for_session(session_key) or AnonymousUser()


def authenticate(hostname: str, session_key: str | None) -> tuple[str | None, Any]:
    """The host's schema (None: unknown or suspended) and the session's user there: one trip to the
    database thread per handshake (each trip opens a connection with CONN_MAX_AGE=0)."""
    schema = resolve_schema(hostname)
    if schema is None:
        return None, AnonymousUser()
    return schema, load_user(schema, session_key)


class TenantAuthMiddleware:
    """Outermost middleware for /ws/: sets scope["schema_name"], scope["user"], scope["session_key"] and
    log context."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        hostname = _header(scope, b"host").split(":")[0].lower()
        session_key = _cookie(scope, settings.SESSION_COOKIE_NAME)
        schema, user = await database_sync_to_async(authenticate)(hostname, session_key)
        if schema is None:
            # Unknown or suspended host: refuse the handshake.
            await send({"type": "websocket.close", "code": 4404})
            return None
        request_id = request_id_from(_header(scope, b"x-request-id") or None)
        # The session key lets the socket join its session's group (closed at sign-out) and re-check
        # the session later (crm.sessions).
        scope = dict(
            scope,
            schema_name=schema,
            user=user,
            session_key=session_key if user.is_authenticated else None,
            request_id=request_id,
        )
        structlog.contextvars.bind_contextvars(tenant=schema, request_id=request_id, socket=scope.get("path"))
        return await self.inner(scope, receive, send)
