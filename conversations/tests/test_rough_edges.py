"""What a new user sees: no debug banners, plurals and dates that read right, failed messages that say
what to do, icons drawn from the sprite, and only the links their role may use."""

from __future__ import annotations

import datetime as dt

from django.template import Context, Template
from django.utils import timezone

from conftest import login
from conversations.models import Message
from conversations.send_errors import explain
from conversations.templatetags.inbox import ago, preview_html, tick
from conversations.tests.conftest import add_message, make_conversation
from crm.templatetags.ui import since as since_filter


def test_a_thread_opened_directly_shows_no_flash_banner(client_a, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Direct Link", messages=3)
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "hello 2 from Direct Link" in page
    assert 'class="flash"' not in page
    assert "in text" not in page


def test_a_flash_message_still_shows_beside_an_open_thread(client_a, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Flash Check")
    login(client_a, tenant_a, owner_a)
    # Settings → Me saves availability with a flash message, shown on the next page.
    client_a.post("/settings/", {"availability": "online"})
    page = client_a.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert 'class="flash"' in page and "Availability updated." in page
    assert page.count('class="flash-') == 1


def test_the_thread_fragment_lists_its_messages_under_the_new_name(client_a, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Fragment", messages=2)
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{conversation.pk}/messages/").content.decode()
    assert "hello 0 from Fragment" in page and "hello 1 from Fragment" in page


def test_relative_times_have_right_plurals_and_never_say_zero_minutes():
    now = timezone.now()

    def since(when: dt.datetime) -> str:  # Django keeps number and unit together with a no-break space
        return since_filter(when).replace("\xa0", " ")

    assert since(now - dt.timedelta(seconds=20)) == "just now"
    assert since(now - dt.timedelta(minutes=1, seconds=5)) == "1 minute ago"
    assert since(now - dt.timedelta(minutes=3, seconds=5)) == "3 minutes ago"
    assert since(now - dt.timedelta(hours=2, minutes=10)) == "2 hours ago"
    assert "0 minutes" not in since(now - dt.timedelta(seconds=59))


def test_the_lists_compact_times_turn_into_the_locales_date_after_a_week():
    now = timezone.now()
    assert ago(now) == "now"
    assert ago(now - dt.timedelta(minutes=4)) == "4 min"
    assert ago(now - dt.timedelta(days=2)) == "2 d"
    old = now - dt.timedelta(days=40)
    assert ago(old) == Template('{{ when|date:"SHORT_DATE_FORMAT" }}').render(
        Context({"when": timezone.localtime(old)})
    )


def test_no_template_writes_its_own_date_format():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text()
        for hand_written in ('|date:"j', '|date:"M', '|date:"H', "|timesince }} ago"):
            assert hand_written not in text, f"{path.relative_to(root)} formats a date by hand"


def test_a_failed_message_outside_the_window_tells_the_agent_to_send_a_template(client_a, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Late Reply")
    add_message(
        tenant_a,
        conversation,
        direction=Message.Direction.OUTBOUND,
        text="Are you still there?",
        status=Message.Status.FAILED,
        error_code=131047,
        error_title="Re-engagement message",
    )
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "error 131047" in page
    assert (
        "More than 24 hours since the customer last wrote: send an approved template to reopen the "
        "conversation." in page
    )


def test_each_known_send_error_has_an_explanation_and_unknown_ones_none():
    for code in (131047, "131026", 131051, 130429, 131056, 131049):
        assert explain(code), code
    assert explain(999999) == "" and explain(None) == ""


def test_ticks_and_previews_are_svg_icons_not_emoji():
    assert "<svg" in tick("read") and "#check-double" in tick("read")
    assert "#clock" in tick("queued") and "🕓" not in tick("queued")
    photo = Message(type="image", preview="📷 Photo")
    html = preview_html(photo)
    assert "#image" in html and html.endswith(" Photo") and "📷" not in html
    text = Message(type="text", text="Hello <b>there</b>")
    assert preview_html(text) == "Hello &lt;b&gt;there&lt;/b&gt;"
    # The list's rows carry the newest message as a dict.
    assert "#location" in preview_html({"type": "location", "preview": "📍 Harbour Street", "text": ""})
    assert preview_html({"type": "text", "preview": "", "text": "Hi"}) == "Hi"
    assert preview_html(None) == ""


def test_a_list_row_shows_the_newest_messages_preview(client_a, tenant_a, owner_a):
    conversation = make_conversation(tenant_a, name="Row Preview")
    add_message(tenant_a, conversation, type=Message.Type.IMAGE, preview="📷 Photo", text="")
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/inbox/?tab=all").content.decode()
    row = page[page.index(f'id="conv-{conversation.pk}"') :]
    row = row[: row.index("</li>")]
    assert "#image" in row and "Photo" in row and "📷" not in row


def test_an_agents_navigation_has_no_reports_link(client_a, tenant_a, agent_a):
    login(client_a, tenant_a, agent_a)
    for url in ("/inbox/", "/contacts/", "/settings/"):
        page = client_a.get(url).content.decode()
        assert 'href="/contacts/"' in page, url
        assert 'href="/reports/"' not in page, url


def test_a_supervisors_navigation_has_the_reports_link(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    assert 'href="/reports/"' in client_a.get("/contacts/").content.decode()


def test_the_403_page_keeps_the_navigation_for_someone_signed_in(client_a, tenant_a, agent_a):
    login(client_a, tenant_a, agent_a)
    for url in ("/reports/", "/settings/attributes/"):
        response = client_a.get(url)
        assert response.status_code == 403, url
        page = response.content.decode()
        assert 'class="mainnav"' in page and 'href="/inbox/"' in page, url
        assert 'href="/reports/"' not in page
        assert "Sign out" in page


def test_the_404_page_of_a_signed_out_visitor_stays_plain(client_a, tenant_a):
    response = client_a.get("/no-such-page/")
    assert response.status_code == 404
    assert 'class="mainnav"' not in response.content.decode()
