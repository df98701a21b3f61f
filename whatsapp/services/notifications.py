"""Owners hear by e-mail when a number needs re-authorisation or its quality drops (the notification
centre takes these over once team operations adds it). Each transition is told once: the callers decide
a transition happened (a conditional UPDATE, the quality alerted last), this module only writes and sends."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from conversations.models import Channel
from crm.models import Agent, Notification
from crm.services import tenant_base_url
from crm.services.notifications import email_preferences, notify
from tenants.db import connection


def owner_emails() -> list[str]:
    """The workspace owners' addresses (active users with an e-mail), in the current schema."""
    return sorted(
        {
            email
            for email in Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).values_list(
                "user__email", flat=True
            )
            if email
        }
    )


def _numbers_link() -> str:
    return f"{tenant_base_url()}{reverse('whatsapp-numbers')}"


def _send_on_commit(subject: str, body: str, recipients: list[str] | None = None) -> None:
    recipients = owner_emails() if recipients is None else recipients
    if not recipients:
        return
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))


def _workspace() -> str:
    return str(getattr(connection.tenant, "name", "") or connection.schema_name)


def alert_needs_reauth(*, channel: Channel, reason: str) -> None:
    # Plain-text mail: names come from Meta and staff, and nothing in it is rendered as HTML.
    subject = f"{_workspace()}: the WhatsApp number {channel} needs re-authorisation"
    body = (
        f"Meta refused the access token of the WhatsApp number {channel} ({channel.name or 'no name'}): "
        f"{reason or 'no reason given'}.\n\n"
        "Messages from this number are not sent until it is reconnected. Reconnect it on the WhatsApp "
        f"numbers page:\n{_numbers_link()}\n"
    )
    # The notification centre shows it to every owner (in-app and live); the e-mail goes to those owners
    # who have not turned this kind off in their notification settings (notify's own e-mail stays off:
    # it would be a second one).
    owners = list(Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).select_related("user"))
    notify(
        recipients=owners,
        kind=Notification.Kind.NUMBER_REAUTH,
        title=f"The WhatsApp number {channel} needs re-authorisation",
        body=f"Meta refused its access token: {reason or 'no reason given'}. Messages from it are not sent "
        "until it is reconnected.",
        url=reverse("whatsapp-numbers"),
        email=False,
    )
    wanted = email_preferences(user_ids=[owner.user_id for owner in owners])
    recipients = sorted(
        {o.user.email for o in owners if o.user.email and wanted[o.user_id][Notification.Kind.NUMBER_REAUTH]}
    )
    _send_on_commit(subject, body, recipients)


def alert_quality_drop(*, channel: Channel, quality: str, event: str = "") -> None:
    what = {
        "FLAGGED": "has been flagged for low quality",
        "DOWNGRADE": "had its messaging limit lowered because of low quality",
    }.get(event, f"dropped to quality rating {quality or event}")
    subject = f"{_workspace()}: the quality of the WhatsApp number {channel} dropped"
    body = (
        f"Meta reports that the WhatsApp number {channel} ({channel.name or 'no name'}) {what}.\n\n"
        "Customers blocking or reporting the number lower its rating; a low rating can lower the messaging "
        "limit or get the number restricted. Details on the WhatsApp numbers page:\n"
        f"{_numbers_link()}\n"
    )
    _send_on_commit(subject, body)
