"""The numbers page's writes: what Meta says about a number (refresh, quality webhooks and their owner
alerts), disabling a number, its own app secret, and the check that its webhooks arrive."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.models import Channel
from core import audit
from crm.models import Agent
from tenants.db import connection
from tenants.models import NumberRoute, WebhookEvent
from whatsapp import parsing
from whatsapp.client import GraphClient, GraphError, NumberDetails, RetryClass, client_for
from whatsapp.models import BusinessAccount, NumberHealth
from whatsapp.services.channels import ChannelError, set_channel_status, update_channel_credentials
from whatsapp.services.notifications import alert_quality_drop

log = structlog.get_logger("whatsapp")

# How bad a quality signal is: an owner is told once per step down, and again only after it recovered.
QUALITY_RANK = {"GREEN": 0, "UNFLAGGED": 0, "UPGRADE": 0, "YELLOW": 1, "RED": 2, "FLAGGED": 2, "DOWNGRADE": 2}
# "Send test event": how long the page waits for the sandbox's test webhook to be stored.
TEST_EVENT_WAIT_SECONDS = 5.0
# In production the check looks for a webhook of the number this recently.
RECENT_WEBHOOK = dt.timedelta(days=7)


def webhook_url() -> str:
    """The public host's webhook URL, as Meta must be told it (from settings, never the request)."""
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{settings.BASE_DOMAIN}{port}/webhooks/whatsapp/"


def verified_numbers(*, phone_number_ids: list[str]) -> set[str]:
    """Which of these numbers Meta confirmed for the current tenant (number_is_verified, in one query)."""
    return set(
        NumberRoute.objects.filter(
            phone_number_id__in=phone_number_ids,
            tenant__schema_name=connection.schema_name,
            verified_at__isnull=False,
        ).values_list("phone_number_id", flat=True)
    )


def health_of(channel: Channel) -> NumberHealth:
    return NumberHealth.objects.get_or_create(channel=channel)[0]


@transaction.atomic
def store_number_details(
    *, channel: Channel, details: NumberDetails, account_name: str = "", alert: bool = True
) -> NumberHealth:
    """Keep what the Graph API said about the number (and its account's messaging limit)."""
    health = NumberHealth.objects.select_for_update().get_or_create(channel=channel)[0]
    health.quality_rating = details.quality_rating
    health.throughput = details.throughput
    health.name_status = details.name_status
    health.meta_status = details.status
    health.refreshed_at = timezone.now()
    health.save()
    account_fields: dict[str, object] = {"refreshed_at": health.refreshed_at}
    if details.messaging_limit:
        account_fields["messaging_limit"] = details.messaging_limit
    if account_name:
        account_fields["name"] = account_name[:200]
    BusinessAccount.objects.update_or_create(waba_id=channel.waba_id, defaults=account_fields)
    if alert and details.quality_rating:
        _note_quality(health, details.quality_rating, event="")
    return health


def _note_quality(health: NumberHealth, signal: str, *, event: str) -> None:
    """Alert the owners when the number's quality is worse than what they were last told (the row is
    locked by the caller, so two webhooks cannot both send)."""
    rank = QUALITY_RANK.get(signal)
    if rank is None:
        return
    alerted = QUALITY_RANK.get(health.quality_alerted, 0)
    if rank == 0 and health.quality_alerted:
        health.quality_alerted = ""
        health.save(update_fields=["quality_alerted"])
    elif rank > alerted:
        health.quality_alerted = signal
        health.save(update_fields=["quality_alerted"])
        alert_quality_drop(channel=health.channel, quality=health.quality_rating, event=event)


def refresh_number(*, channel: Channel) -> NumberHealth:
    """Read the number again from the Graph API with its token. Meta refusing the token turns the number
    to needing re-authorisation (and tells the owners once)."""
    graph = client_for(channel)
    try:
        details = graph.get_number_details(phone_number_id=channel.phone_number_id)
        account = graph.get_account(waba_id=channel.waba_id)
    except GraphError as error:
        if error.retry_class == RetryClass.AUTH:
            set_channel_status(
                channel=channel, status=Channel.Status.NEEDS_REAUTH, reason=f"{error.code}: {error.title}"
            )
            raise ChannelError(
                "token_invalid",
                f"Meta refused the number's access token ({error.code}: {error.title}). Reconnect it.",
            ) from error
        if error.retry_class in (RetryClass.RETRY, RetryClass.UNCERTAIN):
            raise ChannelError(
                "graph_unavailable", "Meta could not be reached; try again in a moment."
            ) from error
        raise ChannelError(
            "refresh_failed", f"Meta did not return the number ({error.code}: {error.title}).", status=422
        ) from error
    return store_number_details(channel=channel, details=details, account_name=str(account.get("name") or ""))


def apply_number_quality_update(*, waba_id: str, update: parsing.NumberQualityUpdate) -> int:
    """phone_number_quality_update for the account, in the tenant's schema: the number is found by its
    display number among the account's numbers. Returns how many numbers it matched."""
    if update.current_limit:
        BusinessAccount.objects.update_or_create(
            waba_id=waba_id,
            defaults={"messaging_limit": update.current_limit, "refreshed_at": timezone.now()},
        )
    matched = 0
    for channel in Channel.objects.filter(waba_id=waba_id, provider=Channel.Provider.CLOUD_API):
        if re.sub(r"[^0-9]", "", channel.display_phone) != update.display_phone_number:
            continue
        matched += 1
        with transaction.atomic():
            health = NumberHealth.objects.select_for_update().get_or_create(channel=channel)[0]
            health.quality_event = update.event
            if update.event == "FLAGGED":
                health.quality_rating = "RED"
            elif update.event == "UNFLAGGED":
                health.quality_rating = "GREEN"
            health.save(update_fields=["quality_event", "quality_rating"])
            _note_quality(health, update.event, event=update.event)
    if not matched:
        log.info("whatsapp_quality_update_for_unknown_number", waba_id=waba_id)
    return matched


def disable_number(*, channel: Channel, by_label: str = "") -> None:
    """Nothing is sent from the number until it is reconnected (its token verified again)."""
    with transaction.atomic():
        set_channel_status(
            channel=channel,
            status=Channel.Status.DISABLED,
            reason=f"Disabled by {by_label}" if by_label else "Disabled on the numbers page",
        )
        audit.record("number.disabled", target=channel, details={"phone_number_id": channel.phone_number_id})


def set_number_app_secret(*, channel: Channel, app_secret: str, by_role: str | None) -> None:
    """The owner's own Meta app's secret for this number (whatsapp.services.channels checks the role
    and that Meta confirmed the number; it records the audit event)."""
    app_secret = app_secret.strip()
    if not app_secret:
        raise ChannelError("missing_secret", "Enter the app secret of your Meta app.")
    if by_role != Agent.Role.OWNER:
        raise ChannelError("owner_only", "Only the workspace owner can set a number's app secret.")
    with transaction.atomic():
        update_channel_credentials(channel=channel, app_secret=app_secret, by_role=by_role)


@dataclass(frozen=True)
class WebhookCheck:
    sent: bool  # the sandbox posted a test event (development and tests)
    received_at: dt.datetime | None  # the latest webhook stored for the number, if recent


def latest_webhook_at(*, channel: Channel, since: dt.datetime) -> dt.datetime | None:
    """When the public webhook last stored an event naming this number (or, for account-level events,
    its account) since `since`: WebhookEvent rows are the platform's log of deliveries."""
    found = (
        WebhookEvent.objects.filter(
            received_at__gte=since, phone_number_ids__contains=[channel.phone_number_id]
        )
        .order_by("-received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return found


def check_webhook_delivery(*, channel: Channel) -> WebhookCheck:
    """ "Send test event". Meta has no API that sends one: against the sandbox (development and tests,
    WHATSAPP_SANDBOX_TEST_EVENTS) the sandbox posts a signed test webhook for the number to the app and
    the check waits briefly for it to be stored; in production it reports the latest webhook of the
    number in the last week (Meta's App Dashboard "Test" button, or a message to the number, makes one)."""
    if not settings.WHATSAPP_SANDBOX_TEST_EVENTS:
        return WebhookCheck(
            sent=False, received_at=latest_webhook_at(channel=channel, since=timezone.now() - RECENT_WEBHOOK)
        )
    started = timezone.now() - dt.timedelta(seconds=1)
    try:
        sent = GraphClient(access_token="sandbox").sandbox_send_test_webhook(
            phone_number_id=channel.phone_number_id, waba_id=channel.waba_id
        )
    except GraphError as error:
        raise ChannelError(
            "graph_unavailable", f"The Graph API sandbox did not send a test event ({error.title})."
        ) from error
    deadline = time.monotonic() + (TEST_EVENT_WAIT_SECONDS if sent else 0)
    while True:
        received = latest_webhook_at(channel=channel, since=started)
        if received is not None or time.monotonic() >= deadline:
            return WebhookCheck(sent=sent, received_at=received)
        time.sleep(0.2)
