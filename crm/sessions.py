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
from collections.abc import Iterable
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.utils import timezone
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


def users_for_sessions(session_keys: Iterable[str]) -> dict[str, Any]:
    """user_for_session for many sessions at once, in the current schema: {session key: user} for the keys
    that still sign an active user in (the others are absent). Two queries whatever their number (one per
    backend for the users): the periodic re-check of the sockets a fan-out wakes together."""
    keys = {key for key in session_keys if key}
    if not keys:
        return {}
    store = SessionStore()
    found: dict[str, tuple[str, Any, Any]] = {}
    rows = store.get_model_class().objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
    for key, data in rows.values_list("session_key", "session_data"):
        session = store.decode(data)
        backend_path = session.get(BACKEND_SESSION_KEY)
        if SESSION_KEY in session and backend_path in settings.AUTHENTICATION_BACKENDS:
            found[key] = (backend_path, session[SESSION_KEY], session.get(HASH_SESSION_KEY))
    user_model = get_user_model()
    users: dict[tuple[str, Any], Any] = {}
    for backend_path in {path for path, _, _ in found.values()}:
        backend = load_backend(backend_path)
        ids = {user_model._meta.pk.to_python(uid) for path, uid, _ in found.values() if path == backend_path}
        if isinstance(backend, ModelBackend):
            # ModelBackend.get_user, for all of them in one query: None for a deactivated user.
            for user in user_model._default_manager.filter(pk__in=ids):
                if backend.user_can_authenticate(user):
                    users[(backend_path, user.pk)] = user
        else:
            for uid in ids:
                other = backend.get_user(uid)
                if other is not None:
                    users[(backend_path, other.pk)] = other
    out = {}
    for key, (backend_path, uid, session_hash) in found.items():
        signed_in = users.get((backend_path, user_model._meta.pk.to_python(uid)))
        if signed_in is None or not session_hash:
            continue
        if constant_time_compare(session_hash, signed_in.get_session_auth_hash()):
            out[key] = signed_in
    return out


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
