from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from core.errors import ServiceError
from crm import services
from crm.models import (
    Agent,
    ApiKey,
    AttributeDefinition,
    Contact,
    Deal,
    DealStageChange,
    Note,
    Stage,
    Tag,
    Task,
)


def test_a_contact_phone_is_stored_in_e164_whatever_the_format(in_a):
    contact = services.create_contact(phone="+44 20 7946 0958", name=" Ada ")
    assert contact.phone == "+442079460958"
    assert contact.name == "Ada"


def test_the_same_number_written_differently_is_a_duplicate(in_a):
    services.create_contact(phone="+1 (415) 555-2671")
    with pytest.raises(ServiceError) as error:
        services.create_contact(phone="0014155552671")
    assert error.value.code == "duplicate_phone"
    assert error.value.field == "phone"


def test_an_invalid_phone_is_refused_with_its_field(in_a):
    with pytest.raises(ServiceError) as error:
        services.create_contact(phone="12")
    assert (error.value.code, error.value.field) == ("invalid_phone", "phone")


@pytest.mark.parametrize(
    ("kind", "choices", "value", "stored"),
    [
        ("text", [], "gold", "gold"),
        ("number", [], "42", 42),
        ("number", [], 2.5, 2.5),
        ("date", [], "2026-01-31", "2026-01-31"),
        ("boolean", [], "yes", True),
        ("choice", ["red", "blue"], "blue", "blue"),
    ],
)
def test_attribute_values_are_checked_and_coerced_by_their_definition(in_a, kind, choices, value, stored):
    services.save_attribute_definition(key="field", label="Field", type=kind, choices=choices)
    contact = services.create_contact(phone="+14155550100", attributes={"field": value})
    assert contact.attributes == {"field": stored}


@pytest.mark.parametrize(
    ("kind", "choices", "value"),
    [
        ("number", [], "many"),
        ("date", [], "31/01/2026"),
        ("boolean", [], "maybe"),
        ("choice", ["red"], "green"),
    ],
)
def test_a_bad_attribute_value_names_the_attribute(in_a, kind, choices, value):
    services.save_attribute_definition(key="field", label="Field", type=kind, choices=choices)
    with pytest.raises(ServiceError) as error:
        services.create_contact(phone="+14155550100", attributes={"field": value})
    assert error.value.code == "invalid_attribute"
    assert error.value.field == "attributes.field"


def test_an_undefined_attribute_is_refused(in_a):
    with pytest.raises(ServiceError) as error:
        services.create_contact(phone="+14155550100", attributes={"shoe_size": 44})
    assert error.value.code == "unknown_attribute"


def test_merging_moves_conversations_notes_deals_tasks_and_tags_to_the_kept_contact(in_a, owner_a):
    from conversations.models import Conversation

    vip, lead = Tag.objects.create(name="vip"), Tag.objects.create(name="lead")
    keep = services.create_contact(phone="+14155550101", name="Ada", tags=[vip])
    discard = services.create_contact(
        phone="+14155550102", email="ada@example.test", tags=[lead], marketing_consent="opted_out"
    )
    conversation = Conversation.objects.create(contact=discard)
    services.add_note(contact=discard, body="Called", author=owner_a)
    deal = services.create_deal(title="Big one", contact=discard)
    task = services.create_task(title="Call back", contact=discard)
    discard.last_inbound_at = timezone.now()
    discard.save()

    kept = services.merge_contacts(keep=keep, discard=discard)

    assert not Contact.objects.filter(pk=discard.pk).exists()
    conversation.refresh_from_db()
    deal.refresh_from_db()
    task.refresh_from_db()
    assert conversation.contact_id == deal.contact_id == task.contact_id == kept.pk
    assert Note.objects.get().contact_id == kept.pk
    assert {t.name for t in kept.tags.all()} == {"vip", "lead"}
    assert kept.name == "Ada" and kept.email == "ada@example.test"
    assert kept.marketing_consent == "opted_out"
    assert kept.last_inbound_at is not None


def test_a_contact_cannot_be_merged_into_itself(in_a):
    contact = services.create_contact(phone="+14155550101")
    with pytest.raises(ServiceError):
        services.merge_contacts(keep=contact, discard=contact)


def test_moving_a_deal_records_its_history_and_derives_won_from_the_stage(in_a, owner_a):
    pipeline = services.create_pipeline(name="Sales")
    deal = services.create_deal(title="Deal", pipeline=pipeline, value="1200.5", currency="eur", by=owner_a)
    assert (deal.stage.name, deal.status, deal.value, deal.currency) == (
        "New",
        "open",
        Decimal("1200.50"),
        "EUR",
    )
    won = Stage.objects.get(pipeline=pipeline, kind="won")
    services.move_deal(deal=deal, stage=won, by=owner_a)
    deal.refresh_from_db()
    assert deal.status == Deal.Status.WON and deal.closed_at is not None
    history = list(
        DealStageChange.objects.filter(deal=deal).order_by("id").values_list("to_stage__name", flat=True)
    )
    assert history == ["New", "Won"]
    reopened = services.move_deal(deal=deal, stage=Stage.objects.get(pipeline=pipeline, name="Proposal"))
    assert reopened.status == "open" and reopened.closed_at is None


def test_a_deal_cannot_move_to_another_pipelines_stage(in_a):
    deal = services.create_deal(title="Deal", pipeline=services.create_pipeline(name="A"))
    other = services.create_pipeline(name="B").stages.first()
    with pytest.raises(ServiceError) as error:
        services.move_deal(deal=deal, stage=other)
    assert error.value.field == "stage"


def test_a_task_past_its_due_time_is_overdue_until_done(in_a):
    task = services.create_task(title="Follow up", due_at=timezone.now() - dt.timedelta(hours=1))
    assert task.is_overdue
    services.complete_task(task=task)
    assert not Task.objects.get().is_overdue and task.done_at is not None


def test_an_admin_cannot_make_an_owner_and_the_last_owner_stays(in_a, owner_a):
    from conftest import make_agent

    agent = make_agent(in_a, email="agent@alpha.test")
    with pytest.raises(ServiceError) as error:
        services.change_agent_role(agent=agent, role="owner", by_role="admin")
    assert error.value.code == "forbidden_role"
    services.change_agent_role(agent=agent, role="admin", by_role="owner")
    agent.user.refresh_from_db()
    assert agent.user.is_staff
    with pytest.raises(ServiceError) as error:
        services.change_agent_role(agent=owner_a.agent, role="agent", by_role="owner")
    assert error.value.code == "last_owner"


def test_an_invitation_emails_a_link_that_sets_a_password(in_a, owner_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = services.invite_agent(
            email="New@Alpha.test", role="agent", invited_by=owner_a, base_url="http://alpha.localhost"
        )
    assert invitation.agent.user.email == "new@alpha.test"
    assert not invitation.agent.user.has_usable_password()
    assert len(mail.outbox) == 1
    assert "http://alpha.localhost/invitations/" in mail.outbox[0].body


def test_an_api_key_is_stored_hashed_and_rotation_keeps_the_old_one_until_revoked(in_a):
    issued = services.create_api_key(name="ci", expires_in_days=90)
    key = issued.api_key
    assert issued.raw.startswith(f"wacrm_{key.prefix}_")
    assert issued.raw not in key.hashed_key and len(key.hashed_key) == 64
    rotated = services.rotate_api_key(api_key=key)
    key.refresh_from_db()
    assert key.is_usable() and rotated.api_key.is_usable()
    assert rotated.api_key.rotated_from_id == key.pk
    assert rotated.api_key.expires_at and rotated.api_key.expires_at > timezone.now() + dt.timedelta(days=89)
    services.revoke_api_key(api_key=key)
    assert not ApiKey.objects.get(pk=key.pk).is_usable()


def test_an_agent_cannot_issue_a_key_above_their_role(in_a):
    with pytest.raises(ServiceError):
        services.create_api_key(name="x", role="admin", by_role="supervisor")


def test_required_attributes_are_required_on_create(in_a):
    AttributeDefinition.objects.create(key="plan", label="Plan", type="text", required=True)
    with pytest.raises(ServiceError) as error:
        services.create_contact(phone="+14155550101")
    assert error.value.code == "missing_attribute"


def test_new_agents_get_admin_access_only_with_an_admin_role(in_a):
    agent = services.create_agent(email="sup@alpha.test", password=None, role="supervisor")
    assert agent.role == Agent.Role.SUPERVISOR and not agent.user.is_staff
