"""WebSocket plumbing: host → tenant schema (outermost), then session authentication in that schema.

Only the schema name is kept in the scope; every DB call runs as database_sync_to_async inside
schema_context. connection.set_tenant is never called from async code.
"""

from __future__ import annotations

from typing import Any

import structlog
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.utils.crypto import constant_time_compare
from django_tenants.utils import get_public_schema_name, schema_context

from config.middleware import request_id_from


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
        session = SessionStore(session_key=session_key)
        try:
            user_id = session[SESSION_KEY]
            backend_path = session[BACKEND_SESSION_KEY]
        except KeyError:
            return AnonymousUser()
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            return AnonymousUser()
        backend = load_backend(backend_path)
        user = backend.get_user(user_id)
        if user is None:
            return AnonymousUser()
        session_hash = session.get(HASH_SESSION_KEY)
        if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
            return AnonymousUser()
        return user


class TenantAuthMiddleware:
    """Outermost middleware for /ws/: sets scope["schema_name"], scope["user"] and log context."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        hostname = _header(scope, b"host").split(":")[0].lower()
        schema = await database_sync_to_async(resolve_schema)(hostname)
        if schema is None:
            # Unknown or suspended host: refuse the handshake.
            await send({"type": "websocket.close", "code": 4404})
            return None
        user = await database_sync_to_async(load_user)(schema, _cookie(scope, settings.SESSION_COOKIE_NAME))
        request_id = request_id_from(_header(scope, b"x-request-id") or None)
        scope = dict(scope, schema_name=schema, user=user, request_id=request_id)
        structlog.contextvars.bind_contextvars(tenant=schema, request_id=request_id, socket=scope.get("path"))
        return await self.inner(scope, receive, send)
