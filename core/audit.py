"""The audit log's one writer: `record(action, ...)` appends who did what, when and from where.

Where it writes: to the schema the connection is on, so a tenant's events land in the tenant's own
table; `platform=True` writes to public (tenant suspensions and other platform operator events).

Transactions: the insert joins the caller's transaction. An action and its audit event commit together
or not at all: a sensitive change never happens unrecorded, and a change that rolled back leaves no
event claiming it happened. (The price: if the audit insert fails, the action fails too. That is the
point of an audit trail.) A failed sign-in writes nothing else, so its event commits on its own.

Who and from where: an explicit `actor` (a user, or a label such as "system" or "api-key:<prefix>")
and `request` win; otherwise both come from the request being served (AuditContextMiddleware keeps it
in a context variable), so services record with one line and no request parameter. With no request
(a worker job, a management command) the actor is "system".

Details never hold secrets: keys naming passwords, tokens, secrets or key material are redacted
whatever the caller passed, and strings are cut to a sane length.

Action names are stable dotted codes (ACTIONS below); the page's filter lists them.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django_tenants.utils import get_public_schema_name, schema_context

from core.models import AuditEvent
from core.net import client_ip

ACTIONS: dict[str, str] = {
    "auth.sign_in": "Signed in",
    "auth.sign_in_failed": "Sign-in failed",
    "agent.role_changed": "Role changed",
    "agent.deactivated": "Agent deactivated",
    "agent.reactivated": "Agent reactivated",
    "team.member_added": "Added to a team",
    "team.member_removed": "Removed from a team",
    "invitation.sent": "Invitation sent",
    "invitation.resent": "Invitation sent again",
    "api_key.issued": "API key issued",
    "api_key.rotated": "API key rotated",
    "api_key.revoked": "API key revoked",
    "webhook.created": "Webhook endpoint added",
    "webhook.updated": "Webhook endpoint changed",
    "webhook.deleted": "Webhook endpoint deleted",
    "two_factor.enabled": "Two-factor authentication turned on",
    "two_factor.disabled": "Two-factor authentication turned off",
    "two_factor.recovery_code_used": "Signed in with a recovery code",
    "two_factor.failed": "Wrong two-factor code",
    "export.created": "Export created",
    "contact.merged": "Contacts merged",
    "contact.deleted": "Contact deleted",
    "attribute.created": "Contact attribute added",
    "attribute.changed": "Contact attribute changed",
    "attribute.deleted": "Contact attribute deleted",
    "settings.changed": "Settings changed",
    "number.connected": "Number connected",
    "number.reconnected": "Number reconnected",
    "number.disabled": "Number disabled",
    "number.app_secret_changed": "Number's app secret changed",
    "number.session_stopped": "Number's WhatsApp Web session stopped",
    "number.logged_out": "Number logged out of WhatsApp Web",
    "number.removed": "Number removed",
    "template.created": "Template submitted",
    "template.deleted": "Template deleted",
    "tenant.created": "Workspace created",
    "tenant.suspended": "Workspace suspended",
    "tenant.reactivated": "Workspace reactivated",
    "tenant.deleted": "Workspace deleted",
    "tenant.deletion_failed": "Workspace deletion failed",
    "tenant.restored": "Workspace restored",
}

SYSTEM = "system"
ANONYMOUS = "anonymous"
REDACTED = "[redacted]"
MAX_TEXT = 500
# Keys whose values are never stored, at any depth of `details`.
SECRET_KEY_RE = re.compile(
    r"passw|passphrase|^pass$|secret|token|credential|authori[sz]ation|cookie|hash|private"
    r"|(^|_)raw($|_)|^key$|api_?key$",
    re.IGNORECASE,
)

_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


@contextlib.contextmanager
def request_context(request: HttpRequest | None) -> Iterator[None]:
    token = _current_request.set(request)
    try:
        yield
    finally:
        _current_request.reset(token)


class AuditContextMiddleware:
    """Makes the request being served known to `record` (for its actor, address and user agent)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_context(request):
            return self.get_response(request)


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def scrub(value: Any) -> Any:
    """`details` without secrets and with bounded strings (JSON-friendly: tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if SECRET_KEY_RE.search(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _clip(value, MAX_TEXT)
    return value


def _is_public_request(request: HttpRequest | None) -> bool:
    """Served on the public host (its users are the platform's operators)."""
    tenant = getattr(request, "tenant", None)
    schema = tenant.schema_name if tenant is not None else connection.schema_name  # type: ignore[attr-defined]
    return bool(schema == get_public_schema_name())


def user_label(user: Any, *, platform: bool = False) -> str:
    """ "ann@example.com", "api-key:ab12cd34" for an integration key, "platform:<email>" for an operator."""
    key = getattr(user, "api_key", None)
    if key is not None and getattr(user, "pk", None) is None:
        return f"api-key:{key.prefix}"
    name = str(getattr(user, "email", "") or getattr(user, "username", "") or f"user:{user.pk}")
    return _clip(f"platform:{name}" if platform else name, 200)


def _actor(actor: Any, request: HttpRequest | None) -> tuple[int | None, str]:
    if isinstance(actor, str):
        return None, _clip(actor, 200)
    if actor is None and request is not None:
        candidate = getattr(request, "user", None)
        if candidate is not None and candidate.is_authenticated:
            actor = candidate
    if actor is None:
        return None, SYSTEM if request is None else ANONYMOUS
    pk = getattr(actor, "pk", None)
    label = user_label(actor, platform=_is_public_request(request))
    # A personal API key acts as its user; the key's prefix says which credential was used.
    key = getattr(getattr(request, "auth", None), "prefix", None) if request is not None else None
    if pk is not None and key:
        label = _clip(f"{label} (api-key:{key})", 200)
    return (int(pk) if pk is not None else None), label


def _target(target: Any) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        kind, ident, label = target
        return str(kind)[:64], str(ident)[:64], _clip(str(label), 200)
    meta = getattr(target, "_meta", None)
    kind = meta.model_name if meta is not None else type(target).__name__.lower()
    return kind[:64], str(getattr(target, "pk", "") or "")[:64], _clip(str(target), 200)


def _where(request: HttpRequest | None) -> tuple[str | None, str, str]:
    if request is None:
        return None, "", ""
    ip: str | None = client_ip(request)
    try:
        ip = str(ipaddress.ip_address(ip or ""))
    except ValueError:
        ip = None  # a test client or a proxy that sent no usable address
    agent = _clip(str(request.META.get("HTTP_USER_AGENT", "")), 300)
    return ip, agent, str(getattr(request, "request_id", ""))[:128]


def record(
    action: str,
    *,
    actor: Any = None,
    target: Any = None,
    details: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
    platform: bool = False,
) -> AuditEvent:
    """Append one event. `target` is a model instance or a (type, id, label) tuple. See the module
    docstring for where it writes, in which transaction, and where actor and address come from."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to core.audit.ACTIONS.")
    request = request if request is not None else _current_request.get()
    actor_id, actor_label = _actor(actor, request)
    target_type, target_id, target_label = _target(target)
    ip, user_agent, request_id = _where(request)
    event = AuditEvent(
        action=action,
        actor_id=actor_id,
        actor_label=actor_label,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        details=scrub(dict(details or {})),
    )
    if platform and connection.schema_name != get_public_schema_name():  # type: ignore[attr-defined]
        with schema_context(get_public_schema_name()):
            event.save()
    else:
        event.save()
    return event


# ---------------------------------------------------------------------------------------------------
# Sign-ins (Django's auth signals: every sign-in path, tenant pages, the tenant admin, the platform admin)
# ---------------------------------------------------------------------------------------------------


def on_logged_in(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    record("auth.sign_in", actor=user, target=user, request=request)


def on_login_failed(
    sender: Any, credentials: Mapping[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the name typed: Django masks the password in `credentials`, and we do not keep even that.
    username = _clip(str(credentials.get("username") or ""), 150)
    record(
        "auth.sign_in_failed",
        actor=ANONYMOUS,
        target=("user", "", username),
        details={"username": username},
        request=request,
    )


# ---------------------------------------------------------------------------------------------------
# Reading (the Settings page, its CSV and the API share these)
# ---------------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "time",
    "action",
    "actor",
    "actor_id",
    "ip",
    "user_agent",
    "target_type",
    "target_id",
    "target",
    "details",
    "request_id",
]


def events(
    *,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The current schema's events, newest first; `since` inclusive, `until` exclusive."""
    queryset = AuditEvent.objects.order_by("-id")
    if action:
        queryset = queryset.filter(action=action)
    if actor:
        queryset = queryset.filter(actor_label__icontains=actor)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return queryset


def csv_row(event: AuditEvent) -> list[Any]:
    return [
        event.created_at.isoformat(),
        event.action,
        event.actor_label,
        event.actor_id if event.actor_id is not None else "",
        event.ip or "",
        event.user_agent,
        event.target_type,
        event.target_id,
        event.target_label,
        json.dumps(event.details, sort_keys=True, cls=DjangoJSONEncoder),
        event.request_id,
    ]
