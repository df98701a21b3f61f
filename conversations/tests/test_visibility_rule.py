"""The visibility rule's forms agree: the queryset (Conversation/Message.objects.visible_to) and the row
check (Conversation.is_visible_to), over every placement of a conversation and every kind of viewer.
(The socket groups' form is held to the row check in test_visibility_sockets.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product
from typing import Any

import pytest
from django.http import Http404
from django_tenants.utils import schema_context

from conftest import make_agent
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, get_visible_conversation, get_visible_message, viewer_for
from crm.models import Contact, Team


@pytest.fixture
def in_a(tenant_a: Any) -> Iterator[Any]:
    with schema_context(tenant_a.schema_name):
        yield tenant_a


def test_the_queryset_and_the_row_check_agree_for_every_placement_and_viewer(tenant_a, in_a):
    me = make_agent(tenant_a, email="rule.me@alpha.test").user
    someone = make_agent(tenant_a, email="rule.someone@alpha.test").user
    mine, theirs = Team.objects.create(name="Rule mine"), Team.objects.create(name="Rule theirs")
    conversations = []
    for i, (assignee, team) in enumerate(product((None, me, someone), (None, mine, theirs))):
        contact = Contact.objects.create(name=f"Rule {i}", phone=f"+1555044{i:04d}")
        conversation = Conversation.objects.create(contact=contact, assignee=assignee, team=team)
        Message.objects.create(conversation=conversation, direction="in", timestamp=conversation.created_at)
        conversations.append(conversation)
    ids = {c.pk for c in conversations}
    for role, team_ids in product(
        ("owner", "admin", "supervisor", "agent"), ((), (mine.pk,), (mine.pk, theirs.pk))
    ):
        viewer = Viewer(user=me, role=role, team_ids=team_ids)
        by_query = set(
            Conversation.objects.visible_to(viewer).filter(pk__in=ids).values_list("pk", flat=True)
        )
        by_row = {c.pk for c in conversations if c.is_visible_to(viewer)}
        assert by_query == by_row, (role, team_ids)
        messages = Message.objects.visible_to(viewer).filter(conversation_id__in=ids)
        assert set(messages.values_list("conversation_id", flat=True)) == by_row, (role, team_ids)


def test_an_agent_sees_their_own_their_teams_and_the_shared_queue(tenant_a, in_a):
    me = make_agent(tenant_a, email="rule.agent@alpha.test").user
    team = Team.objects.create(name="Rule team")
    team.members.add(me.agent)
    contact = Contact.objects.create(name="Rule agent", phone="+15550449999")
    own = Conversation.objects.create(contact=contact, assignee=me)
    teams = Conversation.objects.create(contact=contact, team=team)
    shared = Conversation.objects.create(contact=contact)
    hidden = Conversation.objects.create(contact=contact, team=Team.objects.create(name="Rule other"))
    visible = set(Conversation.objects.visible_to(viewer_for(me)).values_list("pk", flat=True))
    assert {own.pk, teams.pk, shared.pk} <= visible and hidden.pk not in visible


def test_a_viewer_without_a_user_never_matches_the_unassigned_rows_of_a_team(in_a):
    """An id of None must not become `assignee IS NULL`: only the shared queue is left."""
    contact = Contact.objects.create(name="Rule none", phone="+15550448888")
    teams = Conversation.objects.create(contact=contact, team=Team.objects.create(name="Rule none team"))
    shared = Conversation.objects.create(contact=contact)
    viewer = Viewer(user=None, role="agent")
    visible = set(Conversation.objects.visible_to(viewer).values_list("pk", flat=True))
    assert shared.pk in visible and teams.pk not in visible


@pytest.mark.parametrize("pk", ["x", "", None, -1, 0, 2**63, "9" * 40])
def test_loading_by_a_key_that_cannot_exist_is_not_found_rather_than_an_error(in_a, pk):
    viewer = Viewer(user=None, role="owner")
    with pytest.raises(Http404):
        get_visible_conversation(viewer, pk)
    with pytest.raises(Http404):
        get_visible_message(viewer, pk)
