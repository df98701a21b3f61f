from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations import services
from conversations.models import Conversation, InboxEvent, Message
from conversations.services import WorkflowError
from conversations.tests.conftest import make_conversation
from crm.models import Tag, Team


def _system_lines(conversation):
    return list(
        Message.objects.filter(conversation=conversation, type=Message.Type.SYSTEM).values_list(
            "text", flat=True
        )
    )


def test_taking_a_conversation_assigns_it_and_stops_the_bot(tenant_a, agent_a):
    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        services.take_conversation(conversation=c, by=agent_a)
        c.refresh_from_db()
        assert c.assignee_id == agent_a.pk and c.bot_active is False
        assert _system_lines(c) == ["Agent took this conversation over from the bot"]
        assert InboxEvent.objects.filter(conversation=c, payload__type="conversation.assigned").exists()


def test_an_agent_cannot_take_another_agents_conversation(tenant_a, agent_a, other_agent_a):
    c = make_conversation(tenant_a, assignee=other_agent_a)
    with schema_context(tenant_a.schema_name), pytest.raises(WorkflowError) as error:
        services.take_conversation(conversation=c, by=agent_a)
    assert error.value.code == "not_found"


def test_a_supervisor_can_reassign_and_an_agent_can_hand_over_their_own(
    tenant_a, owner_a, agent_a, other_agent_a
):
    c = make_conversation(tenant_a, assignee=agent_a)
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Billing")
        services.assign_conversation(conversation=c, assignee=other_agent_a, team=team, by=agent_a)
        c.refresh_from_db()
        assert (c.assignee_id, c.team_id) == (other_agent_a.pk, team.pk)
        with pytest.raises(WorkflowError) as error:
            services.assign_conversation(conversation=c, assignee=agent_a, team=None, by=agent_a)
        assert error.value.code == "not_found"
        services.assign_conversation(conversation=c, assignee=agent_a, team=None, by=owner_a)
        c.refresh_from_db()
        assert c.assignee_id == agent_a.pk and c.team_id is None


def test_resolving_sets_the_resolution_time_and_reopening_clears_it(tenant_a, owner_a):
    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        services.set_conversation_status(conversation=c, status="resolved", by=owner_a)
        assert c.resolved_at is not None
        services.set_conversation_status(conversation=c, status="open", by=owner_a)
        assert c.resolved_at is None
        with pytest.raises(WorkflowError) as error:
            services.set_conversation_status(conversation=c, status="archived", by=owner_a)
        assert error.value.code == "invalid_status"


def test_a_snoozed_conversation_wakes_up_when_its_time_comes(tenant_a, owner_a):
    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        with pytest.raises(WorkflowError):
            services.snooze_conversation(
                conversation=c, until=timezone.now() - dt.timedelta(minutes=1), by=owner_a
            )
        services.snooze_conversation(conversation=c, until=timezone.now() + dt.timedelta(hours=1), by=owner_a)
        assert services.wake_snoozed_conversations() == 0
        assert services.wake_snoozed_conversations(now=timezone.now() + dt.timedelta(hours=2)) == 1
        c.refresh_from_db()
        assert c.status == Conversation.Status.OPEN and c.snoozed_until is None


def test_tags_unread_bot_and_notes(tenant_a, owner_a):
    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        vip = Tag.objects.create(name="vip")
        services.set_conversation_tags(conversation=c, tags=[vip], by=owner_a)
        assert list(c.tags.all()) == [vip]
        services.mark_conversation_unread(conversation=c, by=owner_a)
        assert c.unread_count == 1
        services.mark_conversation_read(conversation=c, by=owner_a)
        assert c.unread_count == 0
        services.set_bot_active(conversation=c, active=False, by=owner_a)
        services.set_bot_active(conversation=c, active=True, by=owner_a)
        assert c.bot_active
        note = services.add_private_note(conversation=c, text="  call back tomorrow ", author=owner_a)
        assert note.type == Message.Type.NOTE and note.text == "call back tomorrow" and note.wamid is None
        with pytest.raises(WorkflowError) as error:
            services.add_private_note(conversation=c, text="   ", author=owner_a)
        assert error.value.code == "empty_note"


def test_an_agents_first_reply_stops_the_bot_and_records_the_first_response(
    tenant_a, agent_a, conversation_a
):
    c = conversation_a
    with schema_context(tenant_a.schema_name):
        services.send_reply(conversation=c, draft=services.Draft(kind="text", text="hi"), by=agent_a)
        first = c.first_response_at
        assert c.bot_active is False and first is not None and c.first_response_by == agent_a
        services.send_reply(conversation=c, draft=services.Draft(kind="text", text="again"), by=agent_a)
        assert c.first_response_at == first


def test_events_are_published_only_after_commit(tenant_a, owner_a, django_capture_on_commit_callbacks):
    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name), django_capture_on_commit_callbacks() as callbacks:
        services.set_conversation_status(conversation=c, status="pending", by=owner_a)
    # The system line and the status change, and one hand-over of the events to outgoing webhooks.
    assert len(callbacks) == 3


def test_housekeeping_wakes_snoozed_conversations_and_drops_old_events(tenant_a, owner_a):
    from conversations.actors import inbox_housekeeping_for_tenant

    c = make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        services.snooze_conversation(conversation=c, until=timezone.now() + dt.timedelta(hours=1), by=owner_a)
        Conversation.objects.filter(pk=c.pk).update(snoozed_until=timezone.now() - dt.timedelta(minutes=1))
        InboxEvent.objects.create(
            conversation=c, payload={"type": "old"}, created_at=timezone.now() - dt.timedelta(days=3)
        )
        inbox_housekeeping_for_tenant.fn()
        assert Conversation.objects.get(pk=c.pk).status == Conversation.Status.OPEN
        assert not InboxEvent.objects.filter(payload__type="old").exists()
