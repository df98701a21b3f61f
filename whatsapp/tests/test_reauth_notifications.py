"""A number turning to "needs re-authorisation" also lands in its owners' notification centre, once per
transition, and its e-mail follows the owners' notification settings."""

from __future__ import annotations

from django.core import mail
from django_tenants.utils import schema_context

from conftest import make_agent
from conversations.models import Channel
from crm.models import Notification
from crm.services.notifications import set_email_preferences
from whatsapp.services import set_channel_status


def test_owners_get_one_in_app_notification_per_transition(
    tenant_a, channel_a, django_capture_on_commit_callbacks
):
    make_agent(tenant_a, email="second-owner@alpha.test", role="owner")
    make_agent(tenant_a, email="admin@alpha.test", role="admin")
    with schema_context(tenant_a.schema_name), django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):  # three sends failing with 190
            set_channel_status(
                channel=channel_a, status=Channel.Status.NEEDS_REAUTH, reason="190: <b>expired</b>"
            )
        rows = list(Notification.objects.values_list("user__email", "kind", "url"))
    assert sorted(rows) == [
        ("owner@alpha.test", "number_reauth", "/settings/whatsapp/"),
        ("second-owner@alpha.test", "number_reauth", "/settings/whatsapp/"),
    ]
    assert len(mail.outbox) == 1  # one e-mail (to both owners), not a second one from the centre
    assert sorted(mail.outbox[0].to) == ["owner@alpha.test", "second-owner@alpha.test"]


def test_an_owner_who_turned_the_email_off_gets_only_the_in_app_notification(
    tenant_a, owner_a, channel_a, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name):
        set_email_preferences(user=owner_a, choices={"number_reauth": False})
        with django_capture_on_commit_callbacks(execute=True):
            set_channel_status(channel=channel_a, status=Channel.Status.NEEDS_REAUTH, reason="190: expired")
        assert Notification.objects.filter(user=owner_a, kind="number_reauth").count() == 1
    assert mail.outbox == []
