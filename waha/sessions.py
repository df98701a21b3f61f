"""WAHA sessions: linking a number by QR code, keeping its status, reconnecting, stopping, expiring.

One service per write (connect, record_status, reconnect, stop, logout, remove) and the scheduler's two
sweeps (poll_sessions every minute, expire_idle every hour). All WAHA HTTP goes through waha.client.

The gateway of a session: its own server URL and API key, or, both left blank, the platform-wide
WAHA_URL / WAHA_API_KEY. The platform key is only ever sent to the platform server: a blank key with a
server URL of the tenant's own is refused. On the platform server every tenant shares one namespace of
session names, so a name that already exists there is refused (session_taken) rather than taken over
(its webhook would then point at this tenant); on a tenant's own server an existing session is adopted
(its webhook is replaced with ours).

Reconnection: a session reported FAILED is restarted after 30 s, then 1, 2, 4… minutes (by the
minute's poll), at most WAHA_RECONNECT_ATTEMPTS times; after that it "needs attention": owners and
admins get one notification (in-app, and e-mail per their preferences) until a person reconnects it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import segno
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Channel
from core import audit, crypto
from core.errors import ServiceError
from crm.models import Agent, Notification
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.services.notifications import notify
from tenants.models import Tenant, WahaRoute
from waha import client as waha_client
from waha.client import (
    DEFAULT_EVENTS,
    SESSION_NAME_RE,
    SessionInfo,
    WahaClient,
    WahaError,
    gateway,
    is_platform_server,
)
from waha.models import WahaSession
from whatsapp.client import RetryClass

log = structlog.get_logger("waha")

Status = WahaSession.Status
# The first automatic restart of a FAILED session waits this long; each next one twice as long.
RECONNECT_FIRST_DELAY = dt.timedelta(seconds=30)
# Session names staff may type: WAHA's own rule, a little shorter than WAHA's 64 (room in our columns).
SESSION_MAX = 54
SERVER_URL_MAX = 300
NAME_MAX = 100
API_KEY_RE = re.compile(r"[\x21-\x7e]{1,500}")
ME_RE = re.compile(r"(\d{6,15})@(?:c\.us|s\.whatsapp\.net)")

STATUS_REASONS = {
    Status.STARTING: "The WhatsApp Web session is starting.",
    Status.SCAN_QR_CODE: "Not linked yet: scan the QR code on the number's page with the phone.",
    Status.FAILED: "The WhatsApp Web session failed; it is restarted automatically.",
    Status.STOPPED: "The WhatsApp Web session is stopped: reconnect it on the number's page.",
}
NEEDS_ATTENTION_REASON = (
    "The WhatsApp Web session failed and automatic restarts did not help: reconnect it on the number's "
    "page (the phone may have to scan the QR code again)."
)


class WahaSessionError(ServiceError):
    """Linking or managing a WAHA session was refused. Stable codes: invalid_server_url,
    missing_server_url, missing_api_key, invalid_api_key, invalid_session_name, session_taken,
    waha_unreachable, waha_auth_failed, waha_refused."""

    STATUS = {
        "session_taken": 409,
        "waha_auth_failed": 422,
        "waha_refused": 502,
        "waha_unreachable": 502,
    }

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status", self.STATUS.get(code, 400))
        super().__init__(code, message, **kwargs)


@dataclass(frozen=True)
class Connected:
    """A linked number: its channel and session, the webhook URL WAHA posts to and the webhook's HMAC key
    (shown to staff once: it is stored encrypted and never displayed again)."""

    channel: Channel
    waha_session: WahaSession
    webhook_url: str
    webhook_key: str


# --- the gateway ----------------------------------------------------------------------------------------


def _clean_server_url(raw: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment, without its trailing slash."""
    url = (raw or "").strip()
    if len(url) > SERVER_URL_MAX:
        raise WahaSessionError("invalid_server_url", "The server URL is too long.", field="server_url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise WahaSessionError(
            "invalid_server_url",
            "The WAHA server URL must be an http:// or https:// address, e.g. http://waha.example.com:3000.",
            field="server_url",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise WahaSessionError(
            "invalid_server_url",
            "The WAHA server URL takes no user name, password, query or fragment (the API key goes in "
            "its own field).",
            field="server_url",
        )
    return url.rstrip("/")


def client_for(waha_session: WahaSession) -> WahaClient:
    """waha.client.client_for, its refusals as this module's errors."""
    if not gateway(waha_session)[0]:
        raise WahaSessionError(
            "missing_server_url", "This number's WAHA server is not configured (WAHA_URL is empty)."
        )
    try:
        return waha_client.client_for(waha_session)
    except WahaError as exc:
        raise WahaSessionError("invalid_server_url", exc.message, field="server_url") from exc


def webhook_url_for(webhook_id: str) -> str:
    base = settings.WAHA_WEBHOOK_BASE_URL
    if not base:
        port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
        base = f"{settings.SITE_SCHEME}://{settings.BASE_DOMAIN}{port}"
    return f"{base.rstrip('/')}/webhooks/waha/{webhook_id}/"


def _waha_error(exc: WahaError) -> WahaSessionError:
    if exc.retry_class == RetryClass.AUTH:
        return WahaSessionError(
            "waha_auth_failed", "The WAHA server refused the API key.", field="api_key", status=422
        )
    if exc.status is None and exc.retry_class == RetryClass.PERMANENT:
        # core.fetch refused the address before sending anything (a private host not operator-listed…).
        return WahaSessionError(
            "invalid_server_url",
            f"{exc.message.rstrip('.')}. A WAHA server on a private address or a port other than 80/443 "
            "is reached only when the platform operator lists its host in OUTBOUND_ALLOWED_HOSTS.",
            field="server_url",
        )
    if exc.status is None or exc.retryable:
        return WahaSessionError(
            "waha_unreachable", f"The WAHA server could not be reached: {exc.message}", status=502
        )
    return WahaSessionError("waha_refused", f"The WAHA server refused: {exc.message}", status=502)


# --- connect --------------------------------------------------------------------------------------------


def _session_name(raw: str) -> str:
    name = (raw or "").strip()
    if not SESSION_NAME_RE.fullmatch(name) or len(name) > SESSION_MAX:
        raise WahaSessionError(
            "invalid_session_name",
            f"A WAHA session name is 1 to {SESSION_MAX} letters, digits, '_' or '-' (WAHA Core has only "
            "'default').",
            field="session",
        )
    return name


def connect(
    *,
    tenant: Tenant,
    server_url: str,
    api_key: str,
    session: str,
    name: str = "",
    actor: Any = None,
) -> Connected:
    """Link a number of `tenant` through a WAHA session: check the server answers with the key, store
    the Channel (provider "waha"), its WahaSession and the public WahaRoute with a fresh webhook key, then
    create (or, on the tenant's own server, adopt) the session on WAHA with our webhook and start it.
    Raises WahaSessionError (see its codes); nothing is left behind when WAHA refuses."""
    typed_url = (server_url or "").strip()
    url = _clean_server_url(typed_url) if typed_url else settings.WAHA_URL
    if not url:
        raise WahaSessionError(
            "missing_server_url",
            "Give your WAHA server's URL (this platform has no WAHA server of its own).",
            field="server_url",
        )
    platform = is_platform_server(url)
    key = (api_key or "").strip()
    if key and not API_KEY_RE.fullmatch(key):
        # It travels in a header: printable ASCII only (anything else could not be sent, or split it).
        raise WahaSessionError(
            "invalid_api_key",
            "The API key is 1 to 500 printable characters without spaces (letters, digits, symbols).",
            field="api_key",
        )
    if not key and not (platform and settings.WAHA_API_KEY):
        raise WahaSessionError(
            "missing_api_key",
            "Give your WAHA server's API key (the platform's key is only used with the platform's server).",
            field="api_key",
        )
    session = _session_name(session)
    label = " ".join((name or "").split())[:NAME_MAX] or f"WhatsApp Web ({session})"
    with schema_context(tenant.schema_name):
        if any(gateway(s)[0] == url for s in WahaSession.objects.filter(session=session)):
            raise WahaSessionError(
                "session_taken",
                f"The session '{session}' of this WAHA server is already linked here.",
                field="session",
            )
    try:
        client = WahaClient(url, key or settings.WAHA_API_KEY)
    except WahaError as exc:
        raise _waha_error(exc) from exc
    exists = _session_exists(client, session)
    if exists and platform:
        raise WahaSessionError(
            "session_taken",
            f"The session name '{session}' is in use on the platform's WAHA server: choose another one.",
            field="session",
        )
    webhook_id = secrets.token_urlsafe(16)
    webhook_key = secrets.token_urlsafe(32)
    hook = webhook_url_for(webhook_id)
    with schema_context(tenant.schema_name):
        channel, waha_session = _store(
            tenant=tenant,
            server_url=typed_url.rstrip("/") if typed_url else "",
            api_key=key,
            session=session,
            name=label,
            webhook_id=webhook_id,
            webhook_key=webhook_key,
        )
        try:
            if exists:
                info = client.update_session_config(session, hook, webhook_key, DEFAULT_EVENTS)
                if info.status in ("", Status.STOPPED, Status.FAILED):
                    info = client.start_session(session)
            else:
                info = client.create_session(session, hook, webhook_key, DEFAULT_EVENTS, start=True)
        except WahaError as exc:
            _unstore(channel=channel, webhook_id=webhook_id)
            if exc.status == 422 and not exists:
                # Created meanwhile by someone else (WAHA: the name exists).
                raise WahaSessionError(
                    "session_taken",
                    f"The session '{session}' was just created on that server.",
                    field="session",
                ) from exc
            raise _waha_error(exc) from exc
        with transaction.atomic():
            audit.record(
                "number.connected",
                actor=actor,
                target=channel,
                details={"provider": "waha", "session": session, "server": urlsplit(url).netloc},
            )
        record_status(
            waha_session=waha_session,
            status=info.status or Status.STARTING,
            me={"id": info.me_id, "pushName": info.me_name} if info.me_id else None,
            at=info.at,
        )
        channel.refresh_from_db()
        waha_session.refresh_from_db()
    log.info("waha_connected", channel=channel.pk, session=session, adopted=exists)
    return Connected(channel=channel, waha_session=waha_session, webhook_url=hook, webhook_key=webhook_key)


def _session_exists(client: WahaClient, session: str) -> bool:
    try:
        client.get_session(session)
    except WahaError as exc:
        if exc.status == 404:
            return False
        raise _waha_error(exc) from exc
    return True


@transaction.atomic
def _store(
    *,
    tenant: Tenant,
    server_url: str,
    api_key: str,
    session: str,
    name: str,
    webhook_id: str,
    webhook_key: str,
) -> tuple[Channel, WahaSession]:
    WahaRoute.objects.create(
        webhook_id=webhook_id, tenant=tenant, hmac_key_encrypted=crypto.encrypt(webhook_key)
    )
    channel = Channel.objects.create(
        provider=Channel.Provider.WAHA,
        name=name,
        phone_number_id=f"waha:{webhook_id}",
        waba_id="",
        throughput_cap=2,
        status=Channel.Status.NEEDS_REAUTH,
        status_reason=STATUS_REASONS[Status.STARTING],
    )
    waha_session = WahaSession.objects.create(
        channel=channel,
        server_url=server_url,
        api_key_encrypted=crypto.encrypt(api_key) if api_key else "",
        session=session,
        webhook_id=webhook_id,
        status=Status.STARTING,
        status_changed_at=timezone.now(),
    )
    return channel, waha_session


@transaction.atomic
def _unstore(*, channel: Channel, webhook_id: str) -> None:
    WahaRoute.objects.filter(webhook_id=webhook_id).delete()
    channel.delete()


# --- status ---------------------------------------------------------------------------------------------


def _display_phone(me_id: str) -> str:
    found = ME_RE.fullmatch(me_id or "")
    if not found:
        return ""
    try:
        return normalize_phone(f"+{found.group(1)}")[:32]
    except InvalidPhoneNumber:
        return f"+{found.group(1)}"


def _channel_reason(waha_session: WahaSession) -> str:
    if waha_session.needs_attention:
        return NEEDS_ATTENTION_REASON
    return STATUS_REASONS.get(Status(waha_session.status), "") if waha_session.status in Status.values else ""


def _sync_channel(waha_session: WahaSession) -> None:
    """The number follows its session: active when WORKING, otherwise not sendable with a reason staff
    see. A number disabled (removed, or by staff) stays disabled whatever its session says."""
    channel = Channel.objects.select_for_update().get(pk=waha_session.channel_id)
    if channel.status == Channel.Status.DISABLED:
        return
    fields: dict[str, Any] = {}
    if waha_session.status == Status.WORKING:
        fields = {"status": Channel.Status.ACTIVE, "status_reason": ""}
        phone = _display_phone(waha_session.me_id)
        if phone:
            fields["display_phone"] = phone
    else:
        fields = {"status": Channel.Status.NEEDS_REAUTH, "status_reason": _channel_reason(waha_session)[:300]}
    changed = [name for name, value in fields.items() if getattr(channel, name) != value]
    if changed:
        for name in changed:
            setattr(channel, name, fields[name])
        channel.save(update_fields=changed)


@transaction.atomic
def record_status(
    *,
    waha_session: WahaSession,
    status: str,
    me: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
    event: bool = False,
) -> bool:
    """A session's status as WAHA reported it (a session.status webhook, the poll, an action's answer).
    WORKING takes the linked account from `me` and ends any reconnection; FAILED schedules the first
    automatic restart. Returns whether the status changed. Unknown statuses are ignored.

    `at` is when the status held by WAHA's clock (an event's timestamp, an answer's Date), None when
    unknown; never compared with ours. An `event` older than the recorded state's time is not applied
    (webhooks arrive late: a STARTING sent before the poll saw SCAN_QR_CODE must not step it back). An
    answer is always applied: polling is how a lost or misordered event is corrected."""
    status = (status or "").strip().upper()
    if status not in Status.values:
        log.warning("waha_unknown_status", session=waha_session.pk, status=status[:40])
        return False
    row = WahaSession.objects.select_for_update().get(pk=waha_session.pk)
    if event and at is not None and row.status_at_waha is not None and at < row.status_at_waha:
        log.info(
            "waha_stale_status_ignored",
            session=row.pk,
            status=status,
            event_at=at.isoformat(),
            recorded_status=row.status,
            recorded_at=row.status_at_waha.isoformat(),
        )
        _copy(row, waha_session)
        return False
    now = timezone.now()
    changed = row.status != status
    fields: set[str] = set()
    # An answer repeating the status keeps a later event's time: an answer's Date is floored to the
    # second, and an event older than that event is stale whatever the answer said.
    if at is not None and (changed or row.status_at_waha is None or at > row.status_at_waha):
        row.status_at_waha = at
        fields.add("status_at_waha")
    if changed:
        row.status, row.status_changed_at = status, now
        fields |= {"status", "status_changed_at"}
    if status == Status.WORKING:
        me = me if isinstance(me, dict) else {}
        me_id, me_name = str(me.get("id") or "")[:100], " ".join(str(me.get("pushName") or "").split())[:200]
        updates = {
            "me_id": me_id or row.me_id,
            "me_name": me_name or row.me_name,
            "reconnect_attempts": 0,
            "next_reconnect_at": None,
            "needs_attention": False,
            "last_error": "",
        }
        for name, value in updates.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                fields.add(name)
    elif status == Status.FAILED and row.next_reconnect_at is None and not row.needs_attention:
        row.next_reconnect_at = now + _delay(row.reconnect_attempts)
        fields.add("next_reconnect_at")
    if fields:
        row.save(update_fields=sorted(fields))
    _sync_channel(row)
    _copy(row, waha_session)
    if changed:
        log.info("waha_session_status", session=row.pk, status=status)
    return changed


def _copy(source: WahaSession, target: WahaSession) -> None:
    if source is not target:
        for field in WahaSession._meta.concrete_fields:
            setattr(target, field.attname, getattr(source, field.attname))


def _delay(attempts: int) -> dt.timedelta:
    return RECONNECT_FIRST_DELAY * (2 ** min(attempts, 16))


def _note_error(waha_session: WahaSession, message: str) -> None:
    WahaSession.objects.filter(pk=waha_session.pk).update(last_error=message[:300])
    waha_session.last_error = message[:300]


# --- the QR code ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveState:
    """What the linking page shows now: the session as WAHA reports it and, while it waits for the phone,
    the current QR code as inline SVG ("" otherwise); `error` when WAHA could not be asked."""

    waha_session: WahaSession
    qr_svg: str
    error: str


def live_state(*, waha_session: WahaSession) -> LiveState:
    """Ask WAHA for the session's status (recorded) and, while it is SCAN_QR_CODE, the current QR code
    (WAHA rotates it about every 20 s). Never raises for WAHA's failures: they are shown."""
    try:
        client = client_for(waha_session)
        info = client.get_session(waha_session.session)
        record_status(
            waha_session=waha_session,
            status=info.status,
            me={"id": info.me_id, "pushName": info.me_name} if info.me_id else None,
            at=info.at,
        )
        qr = ""
        if waha_session.status == Status.SCAN_QR_CODE:
            qr = render_qr(client.get_qr(waha_session.session))
    except (WahaError, WahaSessionError) as exc:
        message = exc.message if isinstance(exc, WahaSessionError) else _waha_error(exc).message
        _note_error(waha_session, message)
        return LiveState(waha_session=waha_session, qr_svg="", error=message)
    return LiveState(waha_session=waha_session, qr_svg=qr, error="")


def render_qr(value: str) -> str:
    """The QR code as an inline SVG element (segno escapes nothing into it but the matrix)."""
    return str(segno.make(value[:2000], error="l").svg_inline(scale=5, dark="#111", light="#fff", border=2))


# --- staff actions ---------------------------------------------------------------------------------------


def _reset_reconnection(waha_session: WahaSession) -> None:
    WahaSession.objects.filter(pk=waha_session.pk).update(
        reconnect_attempts=0, next_reconnect_at=None, needs_attention=False, last_error=""
    )


def _after_action(waha_session: WahaSession, info: SessionInfo, status: str, action: str, actor: Any) -> None:
    """Record the status an action's answer gave (`status`: the answer's, or what the action implies)."""
    with transaction.atomic():
        record_status(waha_session=waha_session, status=status or waha_session.status, at=info.at)
        audit.record(
            action, actor=actor, target=waha_session.channel, details={"session": waha_session.session}
        )


def reconnect(*, waha_session: WahaSession, actor: Any = None) -> WahaSession:
    """Staff's Reconnect: start a stopped session, restart any other, and start counting automatic
    restarts afresh (clears "needs attention")."""
    client = client_for(waha_session)
    try:
        if waha_session.status == Status.STOPPED:
            info = client.start_session(waha_session.session)
        else:
            info = client.restart_session(waha_session.session)
    except WahaError as exc:
        error = _waha_error(exc)
        _note_error(waha_session, error.message)
        raise error from exc
    _reset_reconnection(waha_session)
    waha_session.refresh_from_db()
    _after_action(waha_session, info, info.status, "number.reconnected", actor)
    return waha_session


def stop(*, waha_session: WahaSession, actor: Any = None) -> WahaSession:
    """Stop the session on WAHA (the phone stays linked: Reconnect starts it again without a QR code)."""
    try:
        info = client_for(waha_session).stop_session(waha_session.session)
    except WahaError as exc:
        raise _waha_error(exc) from exc
    _reset_reconnection(waha_session)
    waha_session.refresh_from_db()
    _after_action(waha_session, info, info.status or Status.STOPPED, "number.session_stopped", actor)
    return waha_session


def logout(*, waha_session: WahaSession, actor: Any = None) -> WahaSession:
    """Unlink the phone (WhatsApp → Linked devices loses this session). The number and its conversations
    stay; linking again needs a new QR scan."""
    try:
        info = client_for(waha_session).logout_session(waha_session.session)
    except WahaError as exc:
        raise _waha_error(exc) from exc
    WahaSession.objects.filter(pk=waha_session.pk).update(me_id="", me_name="")
    _reset_reconnection(waha_session)
    waha_session.refresh_from_db()
    status = info.status if info.status and info.status != Status.WORKING else Status.STOPPED
    _after_action(waha_session, info, status, "number.logged_out", actor)
    return waha_session


@dataclass(frozen=True)
class Removed:
    channel: Channel
    deleted_on_server: bool
    server_error: str


def remove(*, waha_session: WahaSession, actor: Any = None) -> Removed:
    """Delete the session on WAHA (when it can be reached), forget its webhook route and disable the
    number: its conversations and messages stay. A WAHA server that cannot be reached does not block
    the removal (its webhooks then find no route and are refused)."""
    deleted, server_error = True, ""
    try:
        client_for(waha_session).delete_session(waha_session.session)
    except WahaError as exc:
        if exc.status != 404:
            deleted, server_error = False, _waha_error(exc).message
    except WahaSessionError as exc:
        deleted, server_error = False, exc.message
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=waha_session.channel_id)
        WahaRoute.objects.filter(webhook_id=waha_session.webhook_id).delete()
        channel.status = Channel.Status.DISABLED
        channel.status_reason = (
            "Removed: its WhatsApp Web session was deleted. Link the phone again to use it."
        )
        channel.save(update_fields=["status", "status_reason"])
        audit.record(
            "number.removed",
            actor=actor,
            target=channel,
            details={"provider": "waha", "session": waha_session.session, "deleted_on_server": deleted},
        )
        WahaSession.objects.filter(pk=waha_session.pk).delete()
    return Removed(channel=channel, deleted_on_server=deleted, server_error=server_error)


# --- the scheduler ---------------------------------------------------------------------------------------


def waha_tenant_schemas() -> list[str]:
    """The active tenants with a WAHA number (from the public routes: no walk over every schema)."""
    return list(
        Tenant.objects.filter(is_active=True, waha_routes__isnull=False)
        .distinct()
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )


def poll_sessions(*, now: dt.datetime | None = None) -> int:
    """Every tenant's sessions, checked in turn (the scheduler's actor fans out per tenant instead)."""
    checked = 0
    for schema in waha_tenant_schemas():
        with schema_context(schema):
            checked += poll_tenant_sessions(now=now)
    return checked


def poll_tenant_sessions(*, now: dt.datetime | None = None) -> int:
    """Ask WAHA for each session that is not stopped (webhooks can be lost or the server restarted),
    record what it says, then run the restarts that are due. Returns the sessions checked."""
    checked = 0
    for waha_session in WahaSession.objects.exclude(status=Status.STOPPED).select_related("channel"):
        if waha_session.channel.status == Channel.Status.DISABLED:
            continue
        checked += 1
        try:
            info = client_for(waha_session).get_session(waha_session.session)
        except WahaSessionError as exc:
            _note_error(waha_session, exc.message)
            continue
        except WahaError as exc:
            if exc.status == 404:
                _note_error(waha_session, "The session no longer exists on the WAHA server.")
                record_status(waha_session=waha_session, status=Status.STOPPED)
            else:
                _note_error(waha_session, _waha_error(exc).message)
            continue
        record_status(
            waha_session=waha_session,
            status=info.status,
            me={"id": info.me_id, "pushName": info.me_name} if info.me_id else None,
            at=info.at,
        )
    reconnect_due(now=now)
    return checked


def reconnect_due(*, now: dt.datetime | None = None) -> int:
    """Restart the FAILED sessions whose next attempt is due; mark those out of attempts as needing
    attention (and notify, once). Returns the restarts made."""
    now = now or timezone.now()
    restarted = 0
    due = WahaSession.objects.filter(
        status=Status.FAILED, needs_attention=False, next_reconnect_at__lte=now
    ).exclude(channel__status=Channel.Status.DISABLED)
    for waha_session in due:
        attempts = waha_session.reconnect_attempts
        if attempts >= settings.WAHA_RECONNECT_ATTEMPTS:
            _needs_attention(waha_session)
            continue
        # Claimed by a conditional update: two pollers never restart the same session twice.
        claimed = WahaSession.objects.filter(
            pk=waha_session.pk, reconnect_attempts=attempts, status=Status.FAILED, needs_attention=False
        ).update(reconnect_attempts=attempts + 1, next_reconnect_at=now + _delay(attempts + 1))
        if not claimed:
            continue
        restarted += 1
        try:
            info = client_for(waha_session).restart_session(waha_session.session)
        except (WahaError, WahaSessionError) as exc:
            message = exc.message if isinstance(exc, WahaSessionError) else _waha_error(exc).message
            _note_error(waha_session, f"Restart {attempts + 1} failed: {message}")
            continue
        log.info("waha_session_restarted", session=waha_session.pk, attempt=attempts + 1)
        if info.status:
            record_status(waha_session=waha_session, status=info.status, at=info.at)
    return restarted


def _needs_attention(waha_session: WahaSession) -> None:
    with transaction.atomic():
        marked = WahaSession.objects.filter(pk=waha_session.pk, needs_attention=False).update(
            needs_attention=True, next_reconnect_at=None
        )
        if not marked:
            return
        waha_session.refresh_from_db()
        _sync_channel(waha_session)
        channel = waha_session.channel
        staff = Agent.objects.filter(
            role__in=[Agent.Role.OWNER, Agent.Role.ADMIN], user__is_active=True
        ).select_related("user")
        notify(
            recipients=list(staff),
            kind=Notification.Kind.NUMBER_REAUTH,
            title=f"The WhatsApp Web number {channel} needs attention",
            body=f"Its WAHA session '{waha_session.session}' failed and {settings.WAHA_RECONNECT_ATTEMPTS} "
            "automatic restarts did not help. Messages from it are not sent until it is reconnected "
            "(the phone may have to scan the QR code again).",
            url=reverse("waha-session", args=[waha_session.channel_id]),
        )
    log.warning("waha_session_needs_attention", session=waha_session.pk)


def expire_idle(*, now: dt.datetime | None = None) -> int:
    """Stop every tenant's sessions idle longer than WAHA_SESSION_IDLE_EXPIRY days (0: never)."""
    stopped = 0
    for schema in waha_tenant_schemas():
        with schema_context(schema):
            stopped += expire_idle_in_tenant(now=now)
    return stopped


def expire_idle_in_tenant(*, now: dt.datetime | None = None) -> int:
    days = settings.WAHA_SESSION_IDLE_EXPIRY
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    idle = (
        WahaSession.objects.exclude(status=Status.STOPPED)
        .annotate(active_at=Coalesce(F("last_activity_at"), F("created_at")))
        .filter(Q(active_at__lt=cutoff))
    )
    stopped = 0
    for waha_session in idle:
        try:
            client_for(waha_session).stop_session(waha_session.session)
        except (WahaError, WahaSessionError) as exc:
            if not (isinstance(exc, WahaError) and exc.status == 404):
                message = exc.message if isinstance(exc, WahaSessionError) else _waha_error(exc).message
                _note_error(waha_session, f"Could not stop the idle session: {message}")
                continue
        _reset_reconnection(waha_session)
        record_status(waha_session=waha_session, status=Status.STOPPED)
        _note_error(waha_session, f"Stopped after {days} days without a message in or out.")
        stopped += 1
    return stopped
