"""The inbox in Debian's chromium against a live server, worker and Graph API sandbox (see conftest)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conftest import wait_until
from conversations.models import AutoReplyRule, Conversation, Message
from conversations.tests.browser.conftest import OWNER, PNID, WABA, Live, screenshot, sign_in
from crm.models import Contact
from tenants.db import connection
from whatsapp import payloads

pytestmark = pytest.mark.browser

_numbers = itertools.count(1)
TICK_ORDER = ["Sending", "Sent", "Delivered", "Read"]

# Records every tick label each outbound bubble shows, as the page swaps bubbles in and out.
RECORD_TICKS = """
window.__ticks = [];
const record = () => {
  for (const tick of document.querySelectorAll('#messages .msg.out .tick')) {
    const text = tick.closest('.msg').querySelector('.text');
    const entry = (text ? text.textContent : '') + '|' + tick.getAttribute('aria-label');
    if (window.__ticks[window.__ticks.length - 1] !== entry) window.__ticks.push(entry);
  }
};
new MutationObserver(record).observe(
  document.getElementById('thread-pane'), {subtree: true, childList: true, attributes: true});
record();
"""


def new_wa_id() -> str:
    return f"4915{next(_numbers):09d}"


def make_conversation(live: Live, *, name: str, hours_since_inbound: float = 0.02, text: str = "") -> Any:
    """A contact who wrote `hours_since_inbound` ago, and their conversation on the live number."""
    wa_id = new_wa_id()
    wrote = timezone.now() - dt.timedelta(hours=hours_since_inbound)
    with live.orm():
        contact = Contact.objects.create(name=name, phone=f"+{wa_id}", wa_id=wa_id, last_inbound_at=wrote)
        conversation = Conversation.objects.create(
            contact=contact,
            channel=live.channel,
            last_message_at=wrote,
            last_inbound_at=wrote,
            unread_count=1,
        )
        Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            type=Message.Type.TEXT,
            text=text or f"Hello, this is {name}",
            status=Message.Status.RECEIVED,
            timestamp=wrote,
        )
    return conversation


def open_conversation(page: Any, conversation: Any) -> None:
    page.locator(f"#conv-{conversation.pk} .row-link").click()
    expect(page.locator(f'#thread[data-conversation="{conversation.pk}"]')).to_be_visible()
    wait_for_socket(page)


def wait_for_page(page: Any, check: Any, what: str, timeout_ms: int = 30_000) -> None:
    """Poll `check` while the page runs (Playwright delivers its events, routes included, only while
    the test waits on the page)."""
    for _ in range(timeout_ms // 50):
        if check():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_js(page: Any, expression: str, timeout_ms: int = 30_000) -> None:
    """Poll a JavaScript expression (page.wait_for_function would eval(), which the page's CSP forbids)."""
    wait_for_page(page, lambda: page.evaluate(expression), expression, timeout_ms)


def wait_for_socket(page: Any) -> None:
    wait_for_js(page, "window.inboxSocket && window.inboxSocket.state() === 1")


def bubble(page: Any, text: str) -> Any:
    return page.locator("#messages .msg", has_text=text)


def test_the_live_stack_uses_the_test_database(db):
    """Also the reason pytest-django sets the test database up when only the browser tests run."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_an_agent_signs_in_sends_a_reply_and_watches_its_ticks_advance(page, live, tmp_path):
    conversation = make_conversation(live, name="Maria Garcia", text="Is my order on its way?")
    sign_in(page, next_url="/inbox/?tab=all")
    expect(page.locator(f"#conv-{conversation.pk}")).to_contain_text("Maria Garcia")
    open_conversation(page, conversation)
    expect(page.locator("#window-info")).to_contain_text("Replies allowed for")
    page.evaluate(RECORD_TICKS)

    page.fill("#composer-text", "Your parcel left our warehouse this morning.")
    page.press("#composer-text", "Enter")

    sent = bubble(page, "Your parcel left our warehouse")
    expect(sent.locator(".tick")).to_have_attribute("aria-label", "Read")
    labels = [
        entry.split("|")[1]
        for entry in page.evaluate("window.__ticks")
        if entry.startswith("Your parcel left")
    ]
    ranks = [TICK_ORDER.index(label) for label in labels]
    assert ranks == sorted(ranks) and len(set(ranks)) >= 2, labels
    expect(sent).to_have_count(1)
    with live.orm():
        outbound = list(
            Message.objects.filter(conversation=conversation, direction="out", type="text").values()
        )
        assert len(outbound) == 1, outbound
        stored = Message.objects.select_related("conversation__contact").get(pk=outbound[0]["id"])
    assert stored.status == "read" and stored.wamid and stored.sender_id is not None
    assert [
        s["body"]["text"]["body"]
        for s in live.sandbox.sent()
        if s["body"]["to"] == stored.conversation.contact.wa_id
    ] == ["Your parcel left our warehouse this morning."]
    screenshot(page, "thread", tmp_path)


def test_an_inbound_webhook_appears_in_the_list_and_the_open_thread_without_reload(page, live):
    conversation = make_conversation(live, name="Jonas Becker")
    sign_in(page, next_url="/inbox/?tab=all")
    open_conversation(page, conversation)
    page.evaluate("window.__notReloaded = true")

    live.inbound(conversation.contact.wa_id, "Can I change the delivery address?")
    expect(bubble(page, "Can I change the delivery address?")).to_have_count(1)
    expect(page.locator(f"#conv-{conversation.pk} .preview-text")).to_contain_text(
        "change the delivery address"
    )

    newcomer = new_wa_id()
    live.inbound(newcomer, "Hi, do you ship to Austria?", name="Lena Huber")
    row = page.locator("#rows .row", has_text="Lena Huber")
    expect(row).to_contain_text("do you ship to Austria?")
    expect(row.locator(".unread-badge")).to_have_text("1")
    # The newest activity comes first, and the unread count shows in the tab title.
    expect(page.locator("#rows .row").first).to_contain_text("Lena Huber")
    expect(page).to_have_title(re.compile(r"^\(\d+\) "))
    assert page.evaluate("window.__notReloaded") is True


def test_a_row_fetched_for_the_previous_tab_does_not_remove_it_from_the_new_one(page, live):
    # Unassigned: not on the "mine" tab the inbox opens on, but on "all".
    conversation = make_conversation(live, name="Tomas Novak")
    sign_in(page)
    wait_for_socket(page)
    held: list[Any] = []
    finished: list[Any] = []
    holding = [True]
    page.route("**/row/**", lambda route: held.append(route) if holding[0] else route.continue_())
    page.on("requestfinished", lambda request: finished.append(request) if "/row/" in request.url else None)

    # Its events arrive while the list shows "mine": the row's refresh asks for it there (and is held).
    live.inbound(conversation.contact.wa_id, "Is anyone there?")
    wait_for_page(page, lambda: held, "a row fetch for the mine tab")
    assert all("tab=mine" in route.request.url for route in held)

    page.locator("a[data-tab=all]").click()
    row = page.locator(f"#conv-{conversation.pk}")
    expect(row).to_contain_text("Is anyone there?")
    # Now the answers for "mine" (not in that list: 204) arrive, after the list moved on to "all".
    holding[0] = False
    count = len(held)
    for route in held:
        route.continue_()
    wait_for_page(page, lambda: len(finished) >= count, "the held row fetches to finish")
    page.wait_for_timeout(300)  # let the page handle the last answer
    expect(row).to_have_count(1)


def test_a_head_fetched_for_a_conversation_is_not_drawn_once_another_is_open(page, live):
    from django.contrib.auth import get_user_model

    from conversations.services.workflow import set_conversation_status

    first = make_conversation(live, name="Head Alpha")
    second = make_conversation(live, name="Head Beta")
    sign_in(page, next_url="/inbox/?tab=all")
    open_conversation(page, first)
    held: list[Any] = []
    finished: list[Any] = []
    page.route(f"**/c/{first.pk}/head/**", lambda route: held.append(route))
    page.on("requestfinished", lambda request: finished.append(request) if "/head/" in request.url else None)

    # A change to the open conversation: the page asks for its head again (held)...
    with live.orm():
        owner = get_user_model().objects.get(email=OWNER)
        set_conversation_status(
            conversation=Conversation.objects.get(pk=first.pk), status="pending", by=owner
        )
    wait_for_page(page, lambda: held, "the head fetch of the first conversation")
    # ...and the agent opens another one (unread: opening it marks it read, and its own head is fetched
    # again) before the answer comes.
    open_conversation(page, second)
    wait_for_page(
        page, lambda: any(f"/c/{second.pk}/head/" in r.url for r in finished), "the second one's head fetch"
    )
    expect(page.locator("#thread-head")).to_contain_text("Head Beta")
    for route in held:
        route.continue_()
    wait_for_page(
        page,
        lambda: sum(f"/c/{first.pk}/head/" in r.url for r in finished) >= len(held),
        "the held head fetches to finish",
    )
    page.wait_for_timeout(300)  # let the page handle the answers
    expect(page.locator("#thread-head")).to_contain_text("Head Beta")
    expect(page.locator("#thread-head")).not_to_contain_text("Head Alpha")


def test_a_burst_of_new_conversations_redraws_the_list_once_instead_of_a_fetch_per_event(page, live):
    sign_in(page, next_url="/inbox/?tab=all")
    wait_for_socket(page)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url) if "/inbox/" in request.url else None)
    senders = [new_wa_id() for _ in range(25)]
    # One webhook with 25 customers: one processing round, so their ~75 events reach the page together.
    live.post_webhook(
        payloads.event(
            phone_number_id=PNID,
            contacts=[payloads.contact(wa_id, f"Burst {i}") for i, wa_id in enumerate(senders)],
            messages=[
                payloads.message(wa_id=wa_id, type="text", content={"body": "Any news?"}) for wa_id in senders
            ],
        )
    )
    for i in (0, 12, 24):
        expect(page.locator("#rows .row", has_text=f"Burst {i}")).to_be_visible()
    # One fetch per event would be some 75 row fetches and as many count fetches.
    assert len([url for url in fetched if "/row/" in url]) < len(senders)
    assert len([url for url in fetched if "/inbox/list/" in url]) <= 2
    assert len([url for url in fetched if "/inbox/counts/" in url]) <= 5
    with live.orm():  # out of the open list the module's later tests page through
        Conversation.objects.filter(contact__wa_id__in=senders).update(status=Conversation.Status.RESOLVED)


def test_the_list_loads_more_as_its_pane_scrolls(page, live):
    from conversations.selectors import PAGE_SIZE

    extra = [make_conversation(live, name=f"Scroller {i}") for i in range(PAGE_SIZE + 5)]
    sign_in(page, next_url="/inbox/?tab=all")
    try:
        rows = page.locator("#rows .row")
        expect(rows).to_have_count(PAGE_SIZE)
        # The rows scroll inside their pane, not the window: the wheel over the list, as a person would.
        # (The list may be swapped by a live refresh just then: wait until it is laid out again.)
        expect(page.locator("#rows")).to_be_visible()
        box = None
        for _ in range(50):
            box = page.locator("#rows").bounding_box()
            if box:
                break
            page.wait_for_timeout(100)
        assert box, "the list pane is not laid out"
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(40):
            if rows.count() > PAGE_SIZE:
                break
            page.mouse.wheel(0, 600)
            page.wait_for_timeout(100)
        expect(page.locator("#rows .row", has_text="Scroller 0")).to_have_count(1)
    finally:
        with live.orm():  # out of the open list the module's later tests page through
            Conversation.objects.filter(pk__in=[c.pk for c in extra]).update(
                status=Conversation.Status.RESOLVED
            )


def test_a_dropped_socket_reconnects_and_shows_the_messages_sent_meanwhile(page, live):
    conversation = make_conversation(live, name="Aisha Khan")
    state: dict[str, Any] = {"online": True, "routes": []}

    def handle(ws: Any) -> None:
        state["routes"].append(ws)
        if state["online"]:
            ws.connect_to_server()
        # Offline: the page's socket opens but nothing reaches the server (a dead network).

    page.route_web_socket("**/ws/inbox/", handle)
    sign_in(page, next_url="/inbox/?tab=all")
    open_conversation(page, conversation)
    expect(page.locator("#viewers")).to_have_text("")

    state["online"] = False
    state["routes"][-1].close()
    expect(page.locator("#conn-status")).to_contain_text("Reconnecting", timeout=5000)
    wait_for_socket(page)
    assert len(state["routes"]) == 2

    live.inbound(conversation.contact.wa_id, "Are you still there?")
    live.inbound(conversation.contact.wa_id, "Hello??")
    with live.orm():
        wait_until(
            lambda: Message.objects.filter(conversation=conversation, text="Hello??").exists(),
            what="the worker to store the messages",
        )
    page.wait_for_timeout(300)
    expect(bubble(page, "Hello??")).to_have_count(0)

    state["online"] = True
    state["routes"][-1].close()
    expect(bubble(page, "Are you still there?")).to_have_count(1)
    expect(bubble(page, "Hello??")).to_have_count(1)
    assert len(state["routes"]) == 3
    texts = page.locator("#messages .msg .text").all_inner_texts()
    assert texts.index("Are you still there?") < texts.index("Hello??")


def test_outside_the_window_the_composer_offers_only_templates(page, live):
    from whatsapp.models import MessageTemplate

    conversation = make_conversation(live, name="Tom Wilson", hours_since_inbound=30)
    with live.orm():
        MessageTemplate.objects.get_or_create(
            waba_id=WABA,
            name="order_ready",
            language="en_US",
            defaults={
                "category": "UTILITY",
                "status": "APPROVED",
                "components": [{"type": "BODY", "text": "Hello {{1}}, your order {{2}} is ready."}],
            },
        )
    sign_in(page, next_url="/inbox/?tab=all")
    open_conversation(page, conversation)

    expect(page.locator("#window-info")).to_contain_text("The 24-hour window closed")
    expect(page.locator('#composer input[value="reply"]')).to_be_disabled()
    expect(page.locator('#composer input[value="template"]')).to_be_checked()
    expect(page.locator("#composer-text")).to_be_hidden()
    page.select_option("#tpl-select", label="order_ready (en_US, utility)")
    # The parameters arrive in an htmx swap: type once htmx has wired them (as a person would, later).
    wait_for_js(page, "!!(document.querySelector('.tpl-params') || {})['htmx-internal-data']")
    page.fill("#tpl-body_1", "Tom")
    page.fill("#tpl-body_2", "A-1042")
    expect(page.locator("#tpl-preview")).to_have_text("Hello Tom, your order A-1042 is ready.")
    page.click("#template-form button[type=submit]")

    sent = bubble(page, "Hello Tom, your order A-1042 is ready.")
    expect(sent).to_have_count(1)
    expect(sent.locator(".tick")).to_have_attribute("aria-label", "Read")
    template_sends = [s["body"] for s in live.sandbox.sent() if s["body"].get("type") == "template"]
    assert [b["template"]["name"] for b in template_sends if b["to"] == conversation.contact.wa_id] == [
        "order_ready"
    ]

    # The customer writes again: the window opens and the composer offers free replies at once.
    live.inbound(conversation.contact.wa_id, "Great, I'll pick it up")
    expect(bubble(page, "Great, I'll pick it up")).to_have_count(1)
    expect(page.locator('#composer input[value="reply"]')).to_be_checked()
    expect(page.locator("#window-info")).to_contain_text("Replies allowed for")


def test_the_bot_answers_an_agent_takes_over_and_replies_all_live(page, live, tmp_path):
    with live.orm():
        AutoReplyRule.objects.get_or_create(
            keyword="opening hours", defaults={"reply": "We are open 9-18, Mon-Fri."}
        )
    sign_in(page, next_url="/inbox/?tab=all")
    wait_for_socket(page)
    wa_id = new_wa_id()

    live.inbound(wa_id, "What are your opening hours?", name="Sofia Rossi")
    row = page.locator("#rows .row", has_text="Sofia Rossi")
    expect(row).to_be_visible()
    row.locator(".row-link").click()
    expect(bubble(page, "What are your opening hours?")).to_have_count(1)
    bot_reply = bubble(page, "We are open 9-18, Mon-Fri.")
    expect(bot_reply.locator(".by")).to_have_text("Bot")
    expect(page.locator("#thread-head")).to_contain_text("the bot is answering")

    page.click("text=Take over from bot")
    expect(page.locator("#thread-head")).to_contain_text("Hand to bot")
    expect(page.locator("#thread-head")).not_to_contain_text("the bot is answering")

    live.inbound(wa_id, "And the opening hours on Saturday?")
    expect(bubble(page, "And the opening hours on Saturday?")).to_have_count(1)
    with live.orm():
        conversation = Conversation.objects.get(contact__wa_id=wa_id)
        assert Message.objects.filter(conversation=conversation, direction="out", sender=None).count() == 1

    page.fill("#composer-text", "Hi Sofia, I'm Olivia: on Saturdays we open 10-14.")
    page.press("#composer-text", "Enter")
    reply = bubble(page, "on Saturdays we open 10-14")
    expect(reply.locator(".by")).not_to_have_text("Bot")
    expect(reply.locator(".tick")).to_have_attribute("aria-label", "Read")
    expect(bot_reply).to_have_count(1)
    screenshot(page, "inbox", tmp_path)


def test_the_reports_page_draws_its_charts(page, live, tmp_path):
    with live.orm():
        for days_ago in range(6):
            conversation = make_conversation(live, name=f"Report {days_ago}")
            created = timezone.now() - dt.timedelta(days=days_ago, hours=2)
            Conversation.objects.filter(pk=conversation.pk).update(
                created_at=created,
                first_response_at=created + dt.timedelta(minutes=4 + days_ago),
                resolved_at=created + dt.timedelta(hours=1) if days_ago % 2 == 0 else None,
                status="resolved" if days_ago % 2 == 0 else "open",
            )
    sign_in(page, next_url="/reports/")
    expect(page.locator("canvas").first).to_be_visible()
    wait_for_js(page, "document.querySelector('canvas').width > 0")
    screenshot(page, "reports", tmp_path)
