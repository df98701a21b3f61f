"""Auto-assignment: round robin and least busy among online agents with room, the queue when nobody has
room, filling it as room frees, reopened conversations back to their agent, idle agents offline, the
settings page and API, and race safety with concurrent inbound rounds on real connections."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import Counter
from typing import Any

from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import host_of, login, make_agent
from conversations.models import Channel, Conversation, Message, RoutingSettings
from conversations.services import routing, set_conversation_status
from conversations.services.inbound import InboundDraft, store_inbound_messages
from crm.models import Agent, Contact, Team
from crm.services import set_agent_availability

_numbers = itertools.count(7000)


def _routing(tenant: Any, **fields: Any) -> RoutingSettings:
    with schema_context(tenant.schema_name):
        settings = RoutingSettings.load()
        for name, value in fields.items():
            setattr(settings, name, value)
        settings.save()
        return settings


def _online(tenant: Any, email: str, *, capacity: int | None = None, role: str = "agent") -> Agent:
    agent = make_agent(tenant, email=email, role=role)
    with schema_context(tenant.schema_name):
        agent.availability = Agent.Availability.ONLINE
        agent.capacity = capacity
        agent.last_seen_at = timezone.now()
        agent.save()
    return agent


def _channel() -> Channel:
    return Channel.objects.get_or_create(name="Routing test number")[0]


def _inbound(contact: Contact | None = None, *, text: str = "hello") -> Message:
    """One inbound message through the inbound round, as a channel's worker stores it."""
    if contact is None:
        n = next(_numbers)
        contact = Contact.objects.create(name=f"Customer {n}", phone=f"+1666{n:07d}")
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        return store_inbound_messages(
            drafts=[
                InboundDraft(
                    contact=locked,
                    channel=_channel(),
                    wamid=f"wamid.routing.{next(_numbers)}",
                    type="text",
                    text=text,
                    payload={"type": "text"},
                    preview=text,
                    timestamp=timezone.now(),
                )
            ]
        )[0]


def _assignee(message: Message) -> int | None:
    return Conversation.objects.get(pk=message.conversation_id).assignee_id


def test_round_robin_gives_new_conversations_to_two_online_agents_alternately(tenant_a: Any) -> None:
    _routing(tenant_a, mode="round_robin")
    ann = _online(tenant_a, "ann@alpha.test")
    bob = _online(tenant_a, "bob@alpha.test")
    _online(tenant_a, "busy@alpha.test")
    with schema_context(tenant_a.schema_name):
        Agent.objects.filter(user__email="busy@alpha.test").update(availability="busy")
        owners = [_assignee(_inbound()) for _ in range(4)]
        assert owners[0] != owners[1] and owners[0:2] == owners[2:4]
        assert set(owners) == {ann.user_id, bob.user_id}
        line = Message.objects.filter(type=Message.Type.SYSTEM).order_by("id").first()
        assert line is not None and line.text.startswith("Auto-assignment assigned this conversation to")


def test_manual_mode_leaves_new_conversations_in_the_queue(tenant_a: Any) -> None:
    _online(tenant_a, "ann@alpha.test")
    with schema_context(tenant_a.schema_name):
        assert RoutingSettings.load().mode == "manual"
        assert _assignee(_inbound()) is None


def test_least_busy_picks_the_agent_holding_fewest_open_conversations(tenant_a: Any) -> None:
    _routing(tenant_a, mode="least_busy")
    ann = _online(tenant_a, "ann@alpha.test")
    bob = _online(tenant_a, "bob@alpha.test")
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="Old", phone="+16660000001")
        for _ in range(2):
            Conversation.objects.create(contact=contact, assignee=ann.user, bot_active=False)
        # Resolved ones do not count against anyone.
        Conversation.objects.create(contact=contact, assignee=bob.user, bot_active=False, status="resolved")
        Conversation.objects.create(contact=contact, assignee=bob.user, bot_active=False)
        assert _assignee(_inbound()) == bob.user_id
        # Now both hold 2: the one assigned longest ago (ann never was) gets the next; then bob again.
        assert _assignee(_inbound()) == ann.user_id
        assert _assignee(_inbound()) == bob.user_id


def test_nobody_with_room_keeps_conversations_queued_until_a_resolve_frees_room(
    tenant_a: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _routing(tenant_a, mode="round_robin", default_capacity=1)
    ann = _online(tenant_a, "ann@alpha.test")
    with schema_context(tenant_a.schema_name):
        first = _inbound()
        second = _inbound()
        third = _inbound()
        assert _assignee(first) == ann.user_id
        assert _assignee(second) is None and _assignee(third) is None
        conversation = Conversation.objects.get(pk=first.conversation_id)
        with django_capture_on_commit_callbacks(execute=True):
            set_conversation_status(conversation=conversation, status="resolved", by=ann.user)
        # The oldest queued one got the freed room; the other still waits.
        assert _assignee(second) == ann.user_id
        assert _assignee(third) is None


def test_an_agent_coming_online_or_getting_more_capacity_takes_the_oldest_queued(
    tenant_a: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _routing(tenant_a, mode="round_robin")
    ann = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context(tenant_a.schema_name):
        waiting = [_inbound() for _ in range(3)]
        assert [_assignee(m) for m in waiting] == [None, None, None]
        ann.capacity = 2
        ann.save()
        with django_capture_on_commit_callbacks(execute=True):
            set_agent_availability(agent=ann, availability="online")
        assert [_assignee(m) for m in waiting] == [ann.user_id, ann.user_id, None]


def test_offline_busy_and_deactivated_agents_and_other_teams_get_nothing(tenant_a: Any) -> None:
    _routing(tenant_a, mode="round_robin")
    gone = _online(tenant_a, "gone@alpha.test")
    outsider = _online(tenant_a, "outsider@alpha.test")
    member = _online(tenant_a, "member@alpha.test")
    with schema_context(tenant_a.schema_name):
        gone.user.is_active = False
        gone.user.save()
        team = Team.objects.create(name="Sales")
        team.members.add(member)
        settings = RoutingSettings.load()
        settings.team = team
        settings.save()
        assert {_assignee(_inbound()) for _ in range(3)} == {member.user_id}
        assert outsider.user_id not in {c.assignee_id for c in Conversation.objects.all()}


def test_a_reopened_conversation_goes_back_to_its_agent_when_online_with_room_else_to_another(
    tenant_a: Any,
) -> None:
    _routing(tenant_a, mode="round_robin")
    ann = _online(tenant_a, "ann@alpha.test")
    bob = _online(tenant_a, "bob@alpha.test")
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="Returning", phone="+16660000002")
        conversation = Conversation.objects.create(
            contact=contact, channel=_channel(), assignee=ann.user, bot_active=False, status="resolved"
        )
        Agent.objects.filter(pk=ann.pk).update(last_assigned_at=timezone.now())
        _inbound(contact)
        conversation.refresh_from_db()
        assert conversation.status == "open" and conversation.assignee_id == ann.user_id
        # Resolved again while ann is away: the next message goes to bob.
        Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
        Agent.objects.filter(pk=ann.pk).update(availability="offline")
        _inbound(contact)
        conversation.refresh_from_db()
        assert conversation.assignee_id == bob.user_id
        # And with nobody online it goes back to the queue rather than stay with an absent agent.
        Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
        Agent.objects.update(availability="offline")
        _inbound(contact)
        conversation.refresh_from_db()
        assert conversation.assignee_id is None and conversation.status == "open"


def test_a_conversation_with_the_bot_waits_for_the_handover(tenant_a: Any) -> None:
    _routing(tenant_a, mode="round_robin")
    ann = _online(tenant_a, "ann@alpha.test")
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="Botted", phone="+16660000003")
        conversation = Conversation.objects.create(contact=contact, bot_active=True)
        assert routing.route_conversation(conversation=conversation) is None
        from conversations.services.workflow import hand_over_from_bot

        with transaction.atomic():
            locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
            hand_over_from_bot(conversation=locked)
        conversation.refresh_from_db()
        assert conversation.assignee_id == ann.user_id and not conversation.bot_active


def test_idle_agents_go_offline_and_a_socket_ping_keeps_them_online(tenant_a: Any) -> None:
    _routing(tenant_a, idle_minutes=15)
    idle = _online(tenant_a, "idle@alpha.test")
    lively = _online(tenant_a, "lively@alpha.test")
    with schema_context(tenant_a.schema_name):
        long_ago = timezone.now() - dt.timedelta(minutes=20)
        Agent.objects.update(last_seen_at=long_ago)
        routing.touch_agent(user=lively.user)
        assert routing.mark_idle_agents_offline() == 1
        assert Agent.objects.get(pk=idle.pk).availability == "offline"
        assert Agent.objects.get(pk=lively.pk).availability == "online"
        _routing(tenant_a, idle_minutes=0)
        Agent.objects.update(last_seen_at=long_ago)
        assert routing.mark_idle_agents_offline() == 0


# ---------------------------------------------------------------------------------------------------
# The API and the settings page
# ---------------------------------------------------------------------------------------------------


def test_routing_settings_api_reads_and_changes_them_for_admins_only(
    tenant_a: Any, tenant_b: Any, client_a: Client, owner_a: Any, agent_a: Any
) -> None:
    api = login(client_a, tenant_a, owner_a)
    assert api.get("/api/v1/settings/routing/").json() == {
        "mode": "manual",
        "default_capacity": 10,
        "team": None,
        "idle_minutes": 30,
    }
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Support")
    changed = api.patch(
        "/api/v1/settings/routing/",
        {"mode": "round_robin", "default_capacity": 3, "team": team.pk},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["mode"] == "round_robin" and changed.json()["team"] == team.pk
    for bad, code in (
        ({"mode": "random"}, None),
        ({"default_capacity": 0}, None),
        ({"idle_minutes": -1}, None),
        ({"team": 999999}, "invalid_team"),
        ({"mode": "least_busy", "team": 999999}, "invalid_team"),
    ):
        refused = api.patch("/api/v1/settings/routing/", bad, content_type="application/json")
        assert refused.status_code == 400, (bad, refused.content)
        assert "error" in refused.json()
        if code:
            assert refused.json()["error"]["code"] == code
    with schema_context(tenant_a.schema_name):
        # Nothing stored half-way by the refused PATCHes.
        assert RoutingSettings.load().mode == "round_robin"
    with schema_context(tenant_b.schema_name):
        assert RoutingSettings.load().mode == "manual"
    agent = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, agent_a)
    assert agent.get("/api/v1/settings/routing/").status_code == 403
    assert (
        agent.patch(
            "/api/v1/settings/routing/", {"mode": "manual"}, content_type="application/json"
        ).status_code
        == 403
    )


def test_agents_set_their_own_availability_and_admins_anyones_through_the_api(
    tenant_a: Any, tenant_b: Any, owner_a: Any, agent_a: Any, other_agent_a: Any
) -> None:
    me = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, agent_a)
    with schema_context(tenant_a.schema_name):
        mine = Agent.objects.get(user=agent_a).pk
        theirs = Agent.objects.get(user=other_agent_a).pk
    ok = me.patch(f"/api/v1/agents/{mine}/", {"availability": "online"}, content_type="application/json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["availability"] == "online"
    refused = me.patch(
        f"/api/v1/agents/{theirs}/", {"availability": "online"}, content_type="application/json"
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (
        me.patch(f"/api/v1/agents/{mine}/", {"capacity": 50}, content_type="application/json").status_code
        == 403
    )
    bad = me.patch(f"/api/v1/agents/{mine}/", {"availability": "asleep"}, content_type="application/json")
    assert bad.status_code == 400
    admin = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    done = admin.patch(
        f"/api/v1/agents/{theirs}/", {"availability": "busy", "capacity": 4}, content_type="application/json"
    )
    assert done.status_code == 200 and done.json()["availability"] == "busy" and done.json()["capacity"] == 4
    with schema_context(tenant_a.schema_name):
        assert Agent.objects.get(pk=theirs).availability == "busy"
        assert Agent.objects.get(pk=mine).availability == "online"
    # Another workspace's agent id is not found here.
    beta = make_agent(tenant_b, email="beta-agent@beta.test")
    missing = admin.patch(
        f"/api/v1/agents/{beta.pk + 1000}/", {"availability": "online"}, content_type="application/json"
    )
    assert missing.status_code == 404


def test_the_routing_page_is_for_admins_saves_and_escapes_names(
    tenant_a: Any, owner_a: Any, agent_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="<script>alert(1)</script>")
    agent = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, agent_a)
    assert agent.get("/settings/routing/").status_code == 403
    assert agent.post("/settings/routing/", {"mode": "round_robin"}).status_code == 403
    admin = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    page = admin.get("/settings/routing/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    saved = admin.post(
        "/settings/routing/",
        {"mode": "least_busy", "default_capacity": "4", "team": str(team.pk), "idle_minutes": "10"},
    )
    assert saved.status_code == 302
    with schema_context(tenant_a.schema_name):
        settings = RoutingSettings.load()
        assert (settings.mode, settings.default_capacity, settings.team_id, settings.idle_minutes) == (
            "least_busy",
            4,
            team.pk,
            10,
        )
        ann = Agent.objects.get(user=agent_a)
    bad = admin.post("/settings/routing/", {"mode": "chaos", "default_capacity": "4", "idle_minutes": "1"})
    assert bad.status_code == 400
    bad = admin.post(
        "/settings/routing/", {"mode": "manual", "default_capacity": "lots", "idle_minutes": "1"}
    )
    assert bad.status_code == 400
    with schema_context(tenant_a.schema_name):
        assert RoutingSettings.load().mode == "least_busy"
    assert admin.post(f"/settings/routing/agents/{ann.pk}/", {"capacity": "7"}).status_code == 302
    assert admin.post(f"/settings/routing/agents/{ann.pk}/", {"capacity": "-2"}).status_code == 400
    assert admin.post("/settings/routing/agents/999999/", {"capacity": "7"}).status_code == 404
    with schema_context(tenant_a.schema_name):
        assert Agent.objects.get(pk=ann.pk).capacity == 7


# ---------------------------------------------------------------------------------------------------
# Race safety: concurrent inbound rounds on their own database connections
# ---------------------------------------------------------------------------------------------------


def _in_threads(count: int, work: Any) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_concurrent_inbound_never_over_fills_an_agent_nor_assigns_twice(committed_db: None) -> None:
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug="alpha")
    agents: list[Agent] = []
    try:
        _routing(tenant, mode="round_robin", default_capacity=3)
        agents = [_online(tenant, f"racer{i}@alpha.test") for i in range(2)]
        with schema_context(tenant.schema_name):
            contacts = [
                Contact.objects.create(name=f"Racer {i}", phone=f"+1777000{i:04d}") for i in range(10)
            ]

        def inbound(i: int) -> None:
            with schema_context(tenant.schema_name):
                # Two messages per contact, from different threads for the same contact at once.
                _inbound(contacts[i % 10], text=f"hi {i}")

        errors = _in_threads(20, inbound)
        assert errors == []
        with schema_context(tenant.schema_name):
            conversations = list(Conversation.objects.filter(contact__in=contacts))
            assert len(conversations) == 10
            held = Counter(c.assignee_id for c in conversations if c.assignee_id is not None)
            # Capacity 3 each, both full: never 4, and the other 4 wait in the queue.
            assert held == {agents[0].user_id: 3, agents[1].user_id: 3}
            assert sum(1 for c in conversations if c.assignee_id is None) == 4
            for conversation in conversations:
                lines = Message.objects.filter(
                    conversation=conversation, type=Message.Type.SYSTEM, text__startswith="Auto-assignment"
                ).count()
                assert lines == (1 if conversation.assignee_id else 0), conversation.pk

            # Room frees for two: concurrent sweeps (the scheduler and a resolve) fill it exactly once.
            freed = list(
                Conversation.objects.filter(assignee_id=agents[0].user_id).values_list("pk", flat=True)[:2]
            )
            Conversation.objects.filter(pk__in=freed).update(status="resolved")

        def sweep(_: int) -> None:
            with schema_context(tenant.schema_name):
                routing.assign_queued_conversations()

        assert _in_threads(3, sweep) == []
        with schema_context(tenant.schema_name):
            open_held = Counter(
                Conversation.objects.filter(
                    contact__in=contacts, status="open", assignee__isnull=False
                ).values_list("assignee_id", flat=True)
            )
            assert open_held == {agents[0].user_id: 3, agents[1].user_id: 3}
            assert Conversation.objects.filter(contact__in=contacts, assignee__isnull=True).count() == 2
    finally:
        with schema_context(tenant.schema_name):
            Conversation.objects.filter(contact__name__startswith="Racer ").delete()
            Contact.objects.filter(name__startswith="Racer ").delete()
            Channel.objects.filter(name="Routing test number").delete()
            RoutingSettings.objects.all().delete()
            for agent in agents:
                agent.user.delete()


def test_the_account_menu_sets_availability_and_returns_to_the_page(
    tenant_a: Any, agent_a: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _routing(tenant_a, mode="round_robin")
    with schema_context(tenant_a.schema_name):
        waiting = _inbound()
    client = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, agent_a)
    page = client.get("/inbox/").content.decode()
    assert 'name="availability" value="online"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/settings/", {"availability": "online", "next": "/inbox/"})
    assert response.status_code == 302 and response["Location"] == "/inbox/"
    evil = client.post("/settings/", {"availability": "busy", "next": "https://evil.example/"})
    assert evil["Location"] == "/settings/"
    with schema_context(tenant_a.schema_name):
        assert Agent.objects.get(user=agent_a).availability == "busy"
        assert _assignee(waiting) == agent_a.pk
    # The header shows which availability is the agent's now, on the inbox and on the CRM's pages.
    for path in ("/inbox/", "/contacts/"):
        page = client.get(path).content.decode()
        assert 'value="busy" class="link current" aria-pressed="true"' in page
        assert 'value="online" class="link" aria-pressed="false"' in page
