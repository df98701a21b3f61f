"""Live sockets follow the session that opened them: when access ends or changes, the sockets close.

Every inbox socket joins two control groups besides the inbox's own: its user's (`account_group`) and
its session's (`session_group`). Signing out closes the session's sockets; a password change, a
deactivation or a role change closes all of the user's. Closing is enough for a role change: the
browser reconnects and the new socket joins the groups of what the new role may see.

The group names live here rather than in conversations.groups because crm sends to them and crm must
not import conversations. A group_send is at-most-once (Redis Pub/Sub), so the consumer also re-checks
its session now and then (conversations.consumers.SESSION_RECHECK_SECONDS) and closes on its own.
"""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.utils.crypto import constant_time_compare

from tenants.db import connection

log = structlog.get_logger("sessions")

# WebSocket close codes (4000-4999 are the application's). The browser stops at 4401 and asks for a
# new sign-in; on anything else it reconnects, and the handshake decides again what it may see.
CLOSE_SIGNED_OUT = 4401  # the session ended: sign-out, password changed, user deactivated
CLOSE_ACCESS_CHANGED = 4403  # the role (or teams) changed: reconnect to get the new role's view

CLOSE_MESSAGE = "session.close"


def account_group(schema: str, user_id: int) -> str:
    return f"t.{schema}.user.{user_id}"


def session_group(schema: str, session_key: str) -> str:
    # A digest, not the key: group names travel through Redis in clear, and the key is a credential.
    # 24 hex digits keep the name under Channels' 100 characters with a 63-character schema name.
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:24]
    return f"t.{schema}.s.{digest}"


def user_for_session(session_key: str | None) -> Any:
    """The active user signed in by this session in the current schema, or None.

    Django's own checks (the session's backend is configured, the user can still authenticate, the
    password has not changed since sign-in), for callers outside the request cycle: the WebSocket
    handshake and the socket's periodic re-check.
    """
    if not session_key:
        return None
    session = SessionStore(session_key=session_key)
    try:
        user_id = session[SESSION_KEY]
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)  # None for a deactivated user
    if user is None:
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


def _send(group: str, code: int, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": CLOSE_MESSAGE, "code": code, "reason": reason})
    except Exception as exc:  # the socket's own re-check closes it a little later
        log.warning("socket_close_failed", group=group, reason=reason, error=repr(exc))


def close_user_sockets(*, user_id: int, code: int, reason: str) -> None:
    """Close every socket of this user in the current tenant, once the transaction commits."""
    group = account_group(connection.schema_name, user_id)
    transaction.on_commit(lambda: _send(group, code, reason))


def close_session_sockets(*, session_key: str, code: int, reason: str) -> None:
    """Close the sockets opened with this session in the current tenant, once the transaction commits."""
    group = session_group(connection.schema_name, session_key)
    transaction.on_commit(lambda: _send(group, code, reason))


def on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    # Sent by django.contrib.auth.logout before the session is flushed, so its key is still known.
    # Every sign-out path (the staff pages, the admin) goes through logout().
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if session_key:
        close_session_sockets(session_key=session_key, code=CLOSE_SIGNED_OUT, reason="signed_out")
