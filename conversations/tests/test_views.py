from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, Message
from conversations.tests.conftest import add_message, make_conversation
from crm.models import Tag, Team


def test_the_tenant_root_goes_to_the_inbox(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/inbox/"


def test_the_inbox_needs_a_signed_in_user(client_a):
    response = client_a.get("/inbox/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_inbox_shows_the_three_panes_and_the_open_conversations(client_a, tenant_a, owner_a):
    make_conversation(tenant_a, name="Ada Lovelace")
    make_conversation(tenant_a, name="Resolved Person", status=Conversation.Status.RESOLVED)
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/inbox/?tab=all").content.decode()
    assert 'id="list-pane"' in page and 'id="thread-pane"' in page
    assert "Ada Lovelace" in page
    assert "Resolved Person" not in page
    resolved = client_a.get("/inbox/list/?tab=all&status=resolved").content.decode()
    assert "Resolved Person" in resolved and "Ada Lovelace" not in resolved


def test_a_session_of_another_tenant_sees_no_inbox(client_a, tenant_b, owner_b):
    with schema_context(tenant_b.schema_name):
        pass
    login(client_a, tenant_b, owner_b)
    assert client_a.get("/inbox/").status_code == 302


def test_a_conversation_of_another_tenant_is_not_found(client_a, tenant_a, tenant_b, owner_a):
    theirs = make_conversation(tenant_b, name="Beta Secret")
    login(client_a, tenant_a, owner_a)
    for url in (
        f"/inbox/c/{theirs.pk}/",
        f"/inbox/c/{theirs.pk}/messages/",
        f"/inbox/c/{theirs.pk}/head/",
        f"/inbox/c/{theirs.pk}/contact/",
    ):
        response = client_a.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code == 404 or b"Beta Secret" not in response.content
    assert client_a.get(f"/inbox/c/{theirs.pk}/row/").status_code in (204, 404)
    assert client_a.post(f"/inbox/c/{theirs.pk}/take/").status_code == 404


def test_an_agent_sees_only_their_own_their_teams_and_unassigned_conversations(
    client_a, tenant_a, agent_a, other_agent_a
):
    mine = make_conversation(tenant_a, name="Mine Person", assignee=agent_a)
    shared = make_conversation(tenant_a, name="Queue Person")
    others = make_conversation(tenant_a, name="Other Person", assignee=other_agent_a)
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Sales")
        team.members.add(agent_a.agent)
        teamed = Conversation.objects.get(pk=make_conversation(tenant_a, name="Team Person").pk)
        teamed.team = team
        teamed.assignee = other_agent_a
        teamed.save()
    login(client_a, tenant_a, agent_a)
    page = client_a.get("/inbox/list/?tab=all").content.decode()
    assert "Mine Person" in page and "Queue Person" in page and "Team Person" in page
    assert "Other Person" not in page
    assert client_a.get(f"/inbox/c/{others.pk}/", HTTP_HX_REQUEST="true").status_code == 404
    assert client_a.get(f"/inbox/c/{mine.pk}/", HTTP_HX_REQUEST="true").status_code == 200
    mine_tab = client_a.get("/inbox/list/?tab=mine").content.decode()
    assert "Mine Person" in mine_tab and "Queue Person" not in mine_tab
    unassigned = client_a.get("/inbox/list/?tab=unassigned").content.decode()
    assert "Queue Person" in unassigned and "Mine Person" not in unassigned
    assert shared


def test_the_list_is_ordered_by_last_activity_and_pages_with_a_cursor(client_a, tenant_a, owner_a):
    from conversations import selectors

    made = [make_conversation(tenant_a, name=f"Person {i:02d}") for i in range(35)]
    login(client_a, tenant_a, owner_a)
    first = client_a.get("/inbox/list/?tab=all").content.decode()
    assert first.index("Person 34") < first.index("Person 33")
    assert "Person 04" not in first
    assert "cursor=" in first
    with schema_context(tenant_a.schema_name):
        viewer = selectors.viewer_for(owner_a)
        page = selectors.conversation_list(viewer, selectors.ListFilters(tab="all"))
        rest = selectors.conversation_list(viewer, selectors.ListFilters(tab="all"), cursor=page.next_cursor)
    assert len(page.rows) == 30 and len(rest.rows) == 5
    assert {c.pk for c in page.rows} | {c.pk for c in rest.rows} == {c.pk for c in made}
    assert rest.next_cursor is None


def test_search_finds_contacts_by_name_and_conversations_by_message_text(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Grace Hopper")
    add_message(tenant_a, c, text="my invoice number is 4711")
    make_conversation(tenant_a, name="Alan Turing")
    login(client_a, tenant_a, owner_a)
    by_name = client_a.get("/inbox/list/?tab=all&q=grace").content.decode()
    assert "Grace Hopper" in by_name and "Alan Turing" not in by_name
    by_text = client_a.get("/inbox/list/?tab=all&q=4711").content.decode()
    assert "Grace Hopper" in by_text and "Alan Turing" not in by_text


def test_filters_by_team_and_tag(client_a, tenant_a, owner_a):
    a = make_conversation(tenant_a, name="Tagged Person")
    make_conversation(tenant_a, name="Plain Person")
    with schema_context(tenant_a.schema_name):
        tag = Tag.objects.create(name="vip")
        team = Team.objects.create(name="Support")
        conv = Conversation.objects.get(pk=a.pk)
        conv.tags.add(tag)
        conv.team = team
        conv.save()
    login(client_a, tenant_a, owner_a)
    by_tag = client_a.get(f"/inbox/list/?tab=all&tag={tag.pk}").content.decode()
    assert "Tagged Person" in by_tag and "Plain Person" not in by_tag
    by_team = client_a.get(f"/inbox/list/?tab=all&team={team.pk}").content.decode()
    assert "Tagged Person" in by_team and "Plain Person" not in by_team


@pytest.mark.parametrize("size", [3, 25])
def test_the_list_costs_the_same_number_of_queries_however_many_rows(
    size, client_a, tenant_a, owner_a, django_assert_max_num_queries
):
    for i in range(size):
        c = make_conversation(tenant_a, name=f"Row {i}")
        with schema_context(tenant_a.schema_name):
            c.tags.add(Tag.objects.get_or_create(name=f"t{i % 3}")[0])
    login(client_a, tenant_a, owner_a)
    # django-tenants counts each SET search_path as a query.
    with django_assert_max_num_queries(12):
        response = client_a.get("/inbox/list/?tab=all")
    assert response.status_code == 200


@pytest.mark.parametrize("size", [2, 40])
def test_a_thread_costs_the_same_number_of_queries_however_many_messages(
    size, client_a, tenant_a, owner_a, django_assert_max_num_queries
):
    c = make_conversation(tenant_a, name="Chatty", messages=size)
    login(client_a, tenant_a, owner_a)
    with django_assert_max_num_queries(11):
        response = client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode().count('class="msg in') == size


def add_media_message(tenant, conversation, kind, stored_as, **payload):
    """An inbound media message whose file we downloaded and stored (the only source of a media URL)."""
    from conversations.models import Channel, MediaFile

    message = add_message(tenant, conversation, type=kind, payload={kind: payload})
    with schema_context(tenant.schema_name):
        channel, _ = Channel.objects.get_or_create(phone_number_id="pnid-media", waba_id="waba-media")
        MediaFile.objects.create(
            channel=channel,
            message=message,
            direction=MediaFile.Direction.INBOUND,
            kind=kind,
            file=stored_as,
            filename=payload.get("filename", ""),
            size=payload.get("file_size"),
            status=MediaFile.Status.READY,
        )
    return message


def test_every_message_type_renders_in_the_thread(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Types", messages=0)
    target = add_message(tenant_a, c, text="see https://example.com/x", wamid="wamid.target")
    add_media_message(tenant_a, c, Message.Type.IMAGE, "whatsapp/a.jpg", caption="pic")
    add_media_message(tenant_a, c, Message.Type.AUDIO, "whatsapp/a.ogg")
    add_media_message(tenant_a, c, Message.Type.VIDEO, "whatsapp/a.mp4")
    add_media_message(
        tenant_a, c, Message.Type.DOCUMENT, "whatsapp/a.pdf", filename="offer.pdf", file_size=20480
    )
    add_message(
        tenant_a,
        c,
        type=Message.Type.LOCATION,
        payload={"location": {"latitude": 52.52, "longitude": 13.4, "name": "Office"}},
    )
    add_message(
        tenant_a,
        c,
        type=Message.Type.CONTACTS,
        payload={"contacts": [{"name": {"formatted_name": "Bob Card"}, "phones": [{"phone": "+4930"}]}]},
    )
    add_message(
        tenant_a,
        c,
        type=Message.Type.INTERACTIVE,
        payload={"interactive": {"type": "button_reply", "button_reply": {"id": "y", "title": "Yes please"}}},
    )
    add_message(
        tenant_a,
        c,
        type=Message.Type.REACTION,
        payload={"reaction": {"message_id": "wamid.target", "emoji": "👍"}},
    )
    with schema_context(tenant_a.schema_name):
        Message.objects.filter(pk=target.pk).update(reactions={"contact": "👍"})
    add_message(tenant_a, c, text="quoted answer", reply_to=target, is_forwarded=True)
    add_message(
        tenant_a,
        c,
        direction=Message.Direction.OUTBOUND,
        type=Message.Type.TEMPLATE,
        text="Your order shipped",
        status=Message.Status.READ,
        payload={"name": "order_update"},
    )
    add_message(
        tenant_a,
        c,
        direction=Message.Direction.OUTBOUND,
        text="did not go",
        status=Message.Status.FAILED,
        error_code=131047,
        error_title="Re-engagement message",
    )
    add_message(
        tenant_a, c, direction=Message.Direction.OUTBOUND, type=Message.Type.SYSTEM, text="Ann took this"
    )
    add_message(tenant_a, c, direction=Message.Direction.OUTBOUND, type=Message.Type.NOTE, text="secret note")
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert '<a href="https://example.com/x"' in html
    # Media open through the authenticated view (conversations/tests/test_media_view.py), never /media/.
    assert '<img src="/inbox/media/' in html and "/media/whatsapp/" not in html and "pic" in html
    assert "<audio controls" in html and "<video controls" in html
    assert "offer.pdf" in html and "20.0\xa0KB" in html
    assert "openstreetmap.org/?mlat=52.52" in html
    assert "Bob Card" in html and "+4930" in html
    assert "Yes please" in html
    assert 'aria-label="Reactions"><span>👍</span>' in html
    assert "In reply to:" in html and "Forwarded" in html
    assert "order_update" in html and 'aria-label="Read"' in html
    assert "131047" in html and "Re-engagement message" in html and ">Retry<" in html
    assert "system-line" in html and "Ann took this" in html
    assert "Private note" in html and "secret note" in html
    assert html.count('class="msg ') == 13  # the reaction shows on its message, not as a bubble


def test_a_conversation_stays_unread_until_the_page_marks_it_read(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Unread", unread_count=3)
    login(client_a, tenant_a, owner_a)
    client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true")  # a prefetch would do this
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=c.pk).unread_count == 3
    client_a.post(f"/inbox/c/{c.pk}/read/")  # static/js/inbox-thread.js, once the thread is visible
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=c.pk).unread_count == 0


def test_the_tab_counts_count_unread_conversations(client_a, tenant_a, owner_a):
    make_conversation(tenant_a, unread_count=2, assignee=owner_a)
    make_conversation(tenant_a, unread_count=1)
    make_conversation(tenant_a, unread_count=0)
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/inbox/counts/").json() == {"mine": 1, "unassigned": 1, "all": 2}


def test_a_row_fragment_is_empty_when_the_conversation_leaves_the_filtered_list(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Leaving")
    login(client_a, tenant_a, owner_a)
    assert b"Leaving" in client_a.get(f"/inbox/c/{c.pk}/row/?tab=all&status=open").content
    assert client_a.get(f"/inbox/c/{c.pk}/row/?tab=all&status=resolved").status_code == 204


def test_older_messages_load_before_the_first_one(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Long", messages=60)
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Load earlier messages" in html and "hello 9 from" not in html and "hello 10 from" in html
    with schema_context(tenant_a.schema_name):
        first_shown = Message.objects.filter(conversation=c).order_by("timestamp")[10]
    older = client_a.get(f"/inbox/c/{c.pk}/messages/?before={first_shown.pk}").content.decode()
    assert "hello 0 from" in older and "hello 9 from" in older and "hello 10 from" not in older


def test_the_assign_and_tags_menus_load_when_opened(client_a, tenant_a, owner_a, agent_a):
    c = make_conversation(tenant_a, name="Menus")
    with schema_context(tenant_a.schema_name):
        Team.objects.create(name="Billing")
        vip = Tag.objects.create(name="vip")
        Tag.objects.create(name="later")
        Conversation.objects.get(pk=c.pk).tags.add(vip)
    login(client_a, tenant_a, owner_a)
    thread = client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert f'hx-get="/inbox/c/{c.pk}/menu/assign/"' in thread and "Billing" not in thread
    assign = client_a.get(f"/inbox/c/{c.pk}/menu/assign/").content.decode()
    assert "Billing" in assign and f'<option value="{agent_a.pk}"' in assign and 'name="assignee"' in assign
    tags = client_a.get(f"/inbox/c/{c.pk}/menu/tags/").content.decode()
    assert f'value="{vip.pk}" checked' in tags and "later" in tags
    assert client_a.get(f"/inbox/c/{c.pk}/menu/other/").status_code == 404


def test_the_menus_follow_visibility_and_tenancy(client_a, tenant_a, tenant_b, agent_a, other_agent_a):
    hidden = make_conversation(tenant_a, name="Not Yours", assignee=other_agent_a)
    theirs = make_conversation(tenant_b, name="Beta Only")
    login(client_a, tenant_a, agent_a)
    for menu in ("assign", "tags"):
        assert client_a.get(f"/inbox/c/{hidden.pk}/menu/{menu}/").status_code == 404
        # Tenant A holds no conversation agent_a may see: B's id finds nothing here either.
        assert client_a.get(f"/inbox/c/{theirs.pk}/menu/{menu}/").status_code == 404
    client_a.logout()
    assert client_a.get(f"/inbox/c/{hidden.pk}/menu/assign/").status_code == 302


def test_marking_an_unread_whatsapp_conversation_read_marks_its_latest_message_and_tells_meta(
    client_a, tenant_a, owner_a, channel_a, django_capture_on_commit_callbacks
):
    from conversations.models import InboxEvent
    from whatsapp.testing import queued_jobs

    c = make_conversation(tenant_a, name="Blue Ticks", messages=3, unread_count=3, channel=channel_a)
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.post(f"/inbox/c/{c.pk}/read/").status_code == 204
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=c.pk).unread_count == 0
        read = Message.objects.filter(conversation=c, read_at__isnull=False).values_list("wamid", flat=True)
        assert list(read) == [Message.objects.filter(conversation=c).order_by("-timestamp")[0].wamid]
        event = InboxEvent.objects.filter(conversation_id=c.pk).latest("id")
        assert event.payload["type"] == "conversation.read" and event.payload["unread"] == 0
    assert "send_read_receipt" in queued_jobs()
    # Marked again: nothing left to clear, nothing written, no second receipt.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client_a.post(f"/inbox/c/{c.pk}/read/")
    assert callbacks == []
