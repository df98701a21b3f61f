"""A new owner's first-run checklist: connect WhatsApp → invite the team → set business hours and the bot
→ send a first message. Each step is computed from the workspace's data (nothing to keep in sync) in one
query, with the dismissal, and shown to owners and admins until every step is done or it is dismissed."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from conversations.models import AutoReplyRule, BotSettings, BusinessHours, Channel, Message
from crm.models import Agent, Invitation
from onboarding.models import ChecklistState
from tenants.models import Tenant


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    hint: str
    url: str
    done: bool


@dataclass(frozen=True)
class Checklist:
    steps: tuple[Step, ...]
    dismissed: bool

    @property
    def complete(self) -> bool:
        return all(step.done for step in self.steps)

    @property
    def visible(self) -> bool:
        return not (self.dismissed or self.complete)

    @property
    def done_count(self) -> int:
        return sum(step.done for step in self.steps)


def _numbers_url() -> str:
    # Settings → WhatsApp numbers (whatsapp.urls); the tenant admin's list only if that page is not
    # installed, named through the model's own label so the link follows the model wherever it lives.
    meta = Channel._meta
    for name in ("whatsapp-numbers", f"admin:{meta.app_label}_{meta.model_name}_changelist"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return "/admin/"


def checklist_for(*, tenant: Tenant) -> Checklist:
    """The checklist of the tenant whose schema is active: one query."""
    row = (
        Tenant.objects.filter(pk=tenant.pk)
        .annotate(
            has_channel=Exists(Channel.objects.all()),
            has_team=Exists(Invitation.objects.all()) | Exists(Agent.objects.order_by("pk")[1:2]),
            has_hours=Exists(BusinessHours.objects.all()),
            has_bot=Exists(BotSettings.objects.filter(Q(welcome_enabled=True) | Q(away_enabled=True)))
            | Exists(AutoReplyRule.objects.all()),
            has_reply=Exists(
                Message.objects.filter(direction=Message.Direction.OUTBOUND, sender__isnull=False)
            ),
            dismissed=Exists(
                ChecklistState.objects.filter(tenant_id=OuterRef("pk"), dismissed_at__isnull=False)
            ),
        )
        .values("has_channel", "has_team", "has_hours", "has_bot", "has_reply", "dismissed")
        .get()
    )
    steps = (
        Step(
            "whatsapp",
            "Connect WhatsApp",
            "Add your business number so customers' messages arrive here.",
            _numbers_url(),
            row["has_channel"],
        ),
        Step(
            "team",
            "Invite your team",
            "Invite the agents who will answer customers.",
            reverse("crm:team"),
            row["has_team"],
        ),
        Step(
            "hours_bot",
            "Set business hours and the bot",
            "Opening hours, a welcome or away message, or keyword replies.",
            reverse("inbox:settings-inbox"),
            row["has_hours"] or row["has_bot"],
        ),
        Step(
            "first_message",
            "Send a first message",
            "Reply to a customer from the inbox.",
            reverse("inbox:inbox"),
            row["has_reply"],
        ),
    )
    return Checklist(steps=steps, dismissed=row["dismissed"])


def dismiss_checklist(*, tenant: Tenant, by_email: str) -> ChecklistState:
    state, _ = ChecklistState.objects.update_or_create(
        tenant=tenant, defaults={"dismissed_at": timezone.now(), "dismissed_by_email": by_email}
    )
    return state
