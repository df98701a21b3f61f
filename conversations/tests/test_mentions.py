"""@mentions in private notes: the mentioned agent is notified and may open the conversation (the one
visibility rule), only agents of this workspace can be mentioned, and hostile notes stay escaped."""

from __future__ import annotations

import pytest
from django.http import Http404
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, ConversationMention
from conversations.selectors import get_visible_conversation, viewer_for, visible_conversations
from conversations.services import add_private_note
from conversations.tests.conftest import make_conversation
from crm.models import Notification


@pytest.fixture
def theirs(tenant_a, agent_a):
    """A conversation assigned to agent_a: other_agent_a does not see it."""
    return make_conversation(tenant_a, assignee=agent_a)


def _sees(user, conversation) -> bool:
    viewer = viewer_for(user)
    in_list = visible_conversations(viewer).filter(pk=conversation.pk).exists()
    row = Conversation.objects.get(pk=conversation.pk)
    assert in_list == row.is_visible_to(viewer)
    try:
        get_visible_conversation(viewer, conversation.pk)
    except Http404:
        assert not in_list
        return False
    assert in_list
    return True


def test_a_mentioned_agent_is_notified_and_may_open_the_conversation(
    tenant_a, theirs, agent_a, other_agent_a, client_a
):
    with schema_context(tenant_a.schema_name):
        assert not _sees(other_agent_a, theirs)
        note = add_private_note(
            conversation=theirs, text="@OTHER@alpha.test can you check the invoice?", author=agent_a
        )
        [mention] = ConversationMention.objects.filter(note=note)
        assert (mention.user_id, mention.mentioned_by_id, mention.conversation_id) == (
            other_agent_a.pk,
            agent_a.pk,
            theirs.pk,
        )
        assert _sees(other_agent_a, theirs)
        [notification] = Notification.objects.filter(user=other_agent_a)
        assert notification.kind == "mention"
        assert notification.conversation_id == theirs.pk
        assert notification.url == f"/inbox/c/{theirs.pk}/"
        assert not Notification.objects.filter(user=agent_a).exists()
    page = login(client_a, tenant_a, other_agent_a).get(f"/inbox/c/{theirs.pk}/")
    assert page.status_code == 200
    api = client_a.get(f"/api/v1/conversations/{theirs.pk}/")
    assert api.status_code == 200


def test_without_a_mention_the_other_agent_still_gets_404(tenant_a, theirs, agent_a, other_agent_a, client_a):
    with schema_context(tenant_a.schema_name):
        add_private_note(conversation=theirs, text="@agent@alpha.test note to self", author=agent_a)
        assert not ConversationMention.objects.exists()  # mentioning yourself records nothing
        assert not _sees(other_agent_a, theirs)
    assert login(client_a, tenant_a, other_agent_a).get(f"/inbox/c/{theirs.pk}/").status_code == 404
    assert client_a.get(f"/api/v1/conversations/{theirs.pk}/").status_code == 404


def test_an_agent_of_another_tenant_can_never_be_mentioned(tenant_a, tenant_b, theirs, agent_a, owner_b):
    with schema_context(tenant_a.schema_name):
        add_private_note(conversation=theirs, text=f"@{owner_b.email} look", author=agent_a)
        assert not ConversationMention.objects.exists()
        assert not Notification.objects.filter(user=owner_b).exists()
    with schema_context(tenant_b.schema_name):
        assert not Notification.objects.filter(user=owner_b).exists()


def test_the_picker_lists_only_this_workspaces_agents(tenant_a, agent_a, other_agent_a, owner_b, client_a):
    api = login(client_a, tenant_a, agent_a)
    emails = [r["email"] for r in api.get("/inbox/mentions/?q=").json()["results"]]
    assert "other@alpha.test" in emails and owner_b.email not in emails
    assert [r["email"] for r in api.get("/inbox/mentions/?q=oth").json()["results"]] == ["other@alpha.test"]
    assert api.get(f"/inbox/mentions/?q={owner_b.email}").json()["results"] == []


def test_the_picker_needs_a_member(tenant_a, client_a, outsider):
    assert client_a.get("/inbox/mentions/?q=a").status_code in (302, 403)


def test_hostile_text_in_a_note_with_a_mention_stays_escaped(
    tenant_a, theirs, agent_a, other_agent_a, client_a
):
    hostile = "<script>alert('x')</script> @other@alpha.test <img src=x onerror=alert(1)>"
    with schema_context(tenant_a.schema_name):
        add_private_note(conversation=theirs, text=hostile, author=agent_a)
    page = login(client_a, tenant_a, other_agent_a).get(f"/inbox/c/{theirs.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<script>alert('x')</script>" not in html and "<img src=x onerror" not in html
    assert "&lt;script&gt;" in html


def test_a_note_through_the_inbox_records_the_mention(tenant_a, theirs, agent_a, other_agent_a, client_a):
    response = login(client_a, tenant_a, agent_a).post(
        f"/inbox/c/{theirs.pk}/note/", {"text": "ping @other@alpha.test"}
    )
    assert response.status_code == 200
    with schema_context(tenant_a.schema_name):
        assert ConversationMention.objects.filter(conversation=theirs, user=other_agent_a).exists()
