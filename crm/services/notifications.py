"""Notifications: the in-app centre (always), the browser (live, over the inbox socket) and e-mail (per
the user's preferences, sent by a job after commit; unread assignments also in a periodic digest).

notify() is the one way in: features above crm (assignment, mentions, SLA breaches, numbers needing
re-authorisation) call it inside their own transaction, so a notification exists exactly when what it
tells of was committed. Live pushes carry ids, never content: the browser fetches what it shows over
HTTP, where the row is checked to be the viewer's own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterable
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from core.errors import ServiceError
from crm import sessions
from crm.models import Agent, Notification, NotificationPreference
from tenants.db import connection

log = structlog.get_logger("notifications")

KINDS = tuple(Notification.Kind.values)
DIGEST = "digest"
# E-mail by default; in-app is always on. number_reauth goes to owners only (its caller picks them).
EMAIL_DEFAULTS: dict[str, bool] = {
    Notification.Kind.ASSIGNMENT: False,
    Notification.Kind.MENTION: True,
    Notification.Kind.SLA_BREACH: True,
    Notification.Kind.NUMBER_REAUTH: True,
    DIGEST: True,
}
PREFERENCE_LABELS: dict[str, str] = {
    Notification.Kind.ASSIGNMENT: "A conversation is assigned to me",
    Notification.Kind.MENTION: "Someone mentions me in a note",
    Notification.Kind.SLA_BREACH: "An SLA target is breached",
    Notification.Kind.NUMBER_REAUTH: "A WhatsApp number needs re-authorisation",
    DIGEST: "A summary of assignments I have not read",
}
# Unread assignments older than this go into the digest (once each).
DIGEST_AFTER = dt.timedelta(minutes=60)
TITLE_MAX = 200
PUSH_TIMEOUT = 5.0
BODY_MAX = 2000


def _user_of(recipient: Any) -> Any:
    return recipient.user if isinstance(recipient, Agent) else recipient


def _recipient_users(recipients: Iterable[Any]) -> list[Any]:
    """The active users of the current tenant among the recipients, once each.

    Users live in their tenant's schema, and a model instance does not know which schema it came from:
    the rows are read again here, in the active schema, and kept only when the username still matches,
    so a user object of another tenant (whose id may exist here too) never reaches anybody."""
    wanted: dict[int, str] = {}
    for recipient in recipients:
        user = _user_of(recipient)
        if user is None or getattr(user, "pk", None) is None:
            continue
        wanted[user.pk] = user.get_username()
    if not wanted:
        return []
    users = get_user_model().objects.filter(pk__in=list(wanted), is_active=True).order_by("pk")
    return [u for u in users if u.get_username() == wanted[u.pk]]


def _safe_url(url: str) -> str:
    # Only a path on this site: a notification link never leads off it, nor runs script.
    url = (url or "").strip()
    if not url.startswith("/") or url.startswith("//") or "\\" in url or len(url) > 500:
        return ""
    return url


def email_preferences(*, user_ids: Iterable[int]) -> dict[int, dict[str, bool]]:
    """{user id: {kind: e-mail on?}} for every kind and the digest, defaults filled in."""
    ids = list(user_ids)
    result = {uid: dict(EMAIL_DEFAULTS) for uid in ids}
    for pref in NotificationPreference.objects.filter(user_id__in=ids):
        if pref.kind in EMAIL_DEFAULTS:
            result[pref.user_id][pref.kind] = pref.email
    return result


@transaction.atomic
def set_email_preferences(*, user: Any, choices: dict[str, bool]) -> dict[str, bool]:
    unknown = set(choices) - set(EMAIL_DEFAULTS)
    if unknown:
        raise ServiceError("invalid_kind", f"Unknown notification kind: {sorted(unknown)[0]}.", field="kind")
    for kind, email in choices.items():
        NotificationPreference.objects.update_or_create(user=user, kind=kind, defaults={"email": bool(email)})
    return email_preferences(user_ids=[user.pk])[user.pk]


def notify(
    *,
    recipients: Iterable[Any],
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    conversation: Any = None,
    email: bool = True,
) -> list[Notification]:
    """One Notification per recipient (users or agents of the active tenant; inactive users skipped), written
    in the caller's transaction. Once it commits: a live push to each recipient's sockets, and an e-mail
    job for those who want this kind by e-mail (`email=False`: the caller sends its own)."""
    if kind not in KINDS:
        raise ServiceError("invalid_kind", f"Unknown notification kind: {kind}.", field="kind")
    title = " ".join((title or "").split())[:TITLE_MAX]
    if not title:
        raise ServiceError("invalid_title", "A notification needs a title.", field="title")
    users = _recipient_users(recipients)
    if not users:
        return []
    now = timezone.now()
    rows = [
        Notification(
            user=user,
            kind=kind,
            title=title,
            body=(body or "")[:BODY_MAX],
            url=_safe_url(url),
            conversation_id=getattr(conversation, "pk", None),
            created_at=now,
        )
        for user in users
    ]
    Notification.objects.bulk_create(rows)
    prefs = email_preferences(user_ids=[u.pk for u in users])
    to_email = [
        row.pk for row, user in zip(rows, users, strict=True) if email and prefs[user.pk][kind] and user.email
    ]
    schema = connection.schema_name
    pushes = [(row.user_id, row.pk, kind) for row in rows]

    def after_commit() -> None:
        _push(
            schema,
            [
                (user_id, {"type": "notification.created", "notification": pk, "kind": kind})
                for user_id, pk, kind in pushes
            ],
        )
        if to_email:
            from crm.actors import send_notification_emails  # the actor module imports this one

            try:
                send_notification_emails.send(to_email)
            except Exception as exc:  # what was committed stays; the bell still shows it
                log.error("notification_email_enqueue_failed", notifications=to_email, error=repr(exc))

    transaction.on_commit(after_commit)
    return rows


def _push(schema: str, items: list[tuple[int, dict[str, Any]]]) -> None:
    """To each user's own sockets: every socket of a signed-in user (the bell's and the inbox's) joins the
    account's control group (crm.sessions), and the consumers forward a `realtime.batch` received there.
    At most once, like every group_send: the bell catches up from /notifications/summary/ on reconnect
    and on every page load."""
    layer = get_channel_layer()
    if layer is None or not items:
        return

    async def send_all() -> None:
        for user_id, payload in items:
            group = sessions.account_group(schema, user_id)
            await layer.group_send(group, {"type": "realtime.batch", "payloads": [payload]})

    def run() -> None:
        try:
            async_to_sync(send_all)()
        except Exception as exc:
            log.warning("notification_push_failed", users=len(items), error=repr(exc))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    # A caller with an event loop running in this thread cannot wait on another one here: send from a
    # thread of its own (rare: the request and job paths have no loop in their thread).
    thread = threading.Thread(target=run, name="notification-push", daemon=True)
    thread.start()
    thread.join(PUSH_TIMEOUT)


def _push_on_commit(user_id: int, payload: dict[str, Any]) -> None:
    schema = connection.schema_name
    transaction.on_commit(lambda: _push(schema, [(user_id, payload)]))


# --- reading and marking (always one user's own rows) ---------------------------------------------


def unread_count(*, user: Any) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def mark_notification_read(*, user: Any, notification_id: int) -> Notification:
    notification = Notification.objects.filter(user=user, pk=notification_id).first()
    if notification is None:
        raise ServiceError("not_found", "No such notification.", status=404)
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=notification.read_at
        )
        _push_on_commit(user.pk, {"type": "notification.read", "notification": notification.pk})
    return notification


def mark_all_notifications_read(*, user: Any) -> int:
    count = Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
    if count:
        _push_on_commit(user.pk, {"type": "notification.read", "notification": None})
    return count


# --- e-mail ---------------------------------------------------------------------------------------


def _workspace() -> str:
    return str(getattr(connection.tenant, "name", "") or connection.schema_name)


def _absolute(url: str) -> str:
    if not url:
        return ""
    from crm.services.agents import tenant_base_url

    return f"{tenant_base_url()}{url}"


def _send(*, to: str, subject: str, template: str, context: dict[str, Any]) -> None:
    # Plain text and HTML from templates: the HTML one autoescapes, so a hostile title stays text.
    context = {"workspace": _workspace(), **context}
    text = render_to_string(f"crm/email/{template}.txt", context)
    html = render_to_string(f"crm/email/{template}.html", context)
    message = EmailMultiAlternatives(" ".join(subject.split())[:200], text, settings.DEFAULT_FROM_EMAIL, [to])
    message.attach_alternative(html, "text/html")
    message.send()


def send_notification_emails(*, notification_ids: Iterable[int]) -> int:
    """E-mail each notification not e-mailed yet to its user (the job's body). Each row is claimed under
    a row lock and marked in the same transaction as its send: a retry after a failure sends what failed,
    and a row is never e-mailed twice by two workers."""
    sent = 0
    for notification_id in notification_ids:
        with transaction.atomic():
            row = (
                Notification.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("user")
                .filter(pk=notification_id, emailed_at__isnull=True)
                .first()
            )
            if row is None or not row.user.is_active or not row.user.email:
                continue
            _send(
                to=row.user.email,
                subject=f"{_workspace()}: {row.title}",
                template="notification",
                context={"notification": row, "link": _absolute(row.url), "user": row.user},
            )
            Notification.objects.filter(pk=row.pk).update(emailed_at=timezone.now())
            sent += 1
    return sent


def send_assignment_digests(*, older_than: dt.timedelta = DIGEST_AFTER) -> int:
    """One e-mail per user summarising their unread assignment notifications older than `older_than` that
    no e-mail has covered yet; each is covered once. Returns the number of e-mails sent."""
    cutoff = timezone.now() - older_than
    pending = Q(
        kind=Notification.Kind.ASSIGNMENT,
        read_at__isnull=True,
        emailed_at__isnull=True,
        created_at__lt=cutoff,
    )
    user_ids = list(
        Notification.objects.filter(pending).order_by().values_list("user_id", flat=True).distinct()
    )
    prefs = email_preferences(user_ids=user_ids)
    users = get_user_model().objects.filter(pk__in=[u for u in user_ids if prefs[u][DIGEST]], is_active=True)
    sent = 0
    for user in users.exclude(email=""):
        with transaction.atomic():
            rows = list(
                Notification.objects.select_for_update(skip_locked=True)
                .filter(pending, user=user)
                .order_by("created_at", "id")
            )
            if not rows:
                continue
            items = [{"notification": r, "link": _absolute(r.url)} for r in rows]
            _send(
                to=user.email,
                subject=f"{_workspace()}: {len(rows)} unread assignment{'s' if len(rows) != 1 else ''}",
                template="assignment_digest",
                context={"items": items, "user": user, "link": _absolute("/notifications/")},
            )
            Notification.objects.filter(pk__in=[r.pk for r in rows]).update(emailed_at=timezone.now())
            sent += 1
    return sent
