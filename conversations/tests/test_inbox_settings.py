"""Settings → Inbox (/settings/inbox/): bot messages, business hours, auto-reply rules, saved replies."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations import bot
from conversations.models import (
    AutoReplyRule,
    BotSettings,
    BusinessHours,
    CannedResponse,
    Conversation,
    Message,
)
from whatsapp import payloads
from whatsapp.testing import PNID_A, deliver

PAGE = "/settings/inbox/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def codes(response: Any) -> list[str]:
    """The stable error codes the page shows (data-code on each error)."""
    return re.findall(r'class="error" role="alert" data-code="([\w-]+)"', response.content.decode())


@pytest.fixture
def owner_client(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


def orm(tenant: Any) -> Any:
    return schema_context(tenant.schema_name)


def hours_form(**days: tuple[str, ...]) -> dict[str, Any]:
    """The hours form's fields: `mon=("09:00", "17:00")` opens Monday 9-17 (pairs repeat for more)."""
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    data: dict[str, Any] = {"time_zone": "Europe/Berlin", "mode": "hours"}
    for name, times in days.items():
        if name in names:
            d = names.index(name)
            data[f"open_{d}"] = "on"
            data[f"opens_{d}"] = list(times[0::2])
            data[f"closes_{d}"] = list(times[1::2])
        else:
            data[name] = times
    return data


# ---------------------------------------------------------------------------------------------------
# The page and who may use it
# ---------------------------------------------------------------------------------------------------


def test_an_owner_sees_the_four_sections_and_the_inbox_tab_in_the_settings_nav(owner_client):
    response = owner_client.get(PAGE)
    page = response.content.decode()
    assert response.status_code == 200
    for section in ("bot-messages", "hours", "rules", "replies"):
        assert f'id="{section}"' in page
    assert re.search(r'href="/settings/inbox/" aria-current="page">Inbox</a>', page)


def test_the_settings_nav_links_the_inbox_settings_for_admins_only(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    assert b'href="/settings/inbox/"' in client_a.get("/settings/").content
    agent = make_agent(tenant_a, email="nav.agent@alpha.test", role="agent")
    login(client_a, tenant_a, agent.user)
    assert b'href="/settings/inbox/"' not in client_a.get("/settings/").content


@pytest.mark.parametrize("role, allowed", [("agent", False), ("supervisor", False), ("admin", True)])
def test_only_admins_and_owners_open_the_page(client_a, tenant_a, role, allowed):
    member = make_agent(tenant_a, email=f"{role}.inbox@alpha.test", role=role)
    login(client_a, tenant_a, member.user)
    response = client_a.get(PAGE)
    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert b"You do not have access to this page." in response.content


def test_an_agent_can_change_nothing_on_the_page(client_a, tenant_a):
    with orm(tenant_a):
        rule = AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
        canned = CannedResponse.objects.create(shortcut="thanks", text="Thank you!")
    agent = make_agent(tenant_a, email="writer.agent@alpha.test", role="agent")
    login(client_a, tenant_a, agent.user)
    posts = {
        "/settings/inbox/messages/": {"welcome_enabled": "on", "welcome_text": "Hi"},
        "/settings/inbox/hours/": hours_form(mon=("09:00", "17:00")),
        "/settings/inbox/rules/": {"keyword": "new", "match": "contains", "reply": "x"},
        f"/settings/inbox/rules/{rule.pk}/": {"keyword": "changed", "match": "contains", "reply": "x"},
        f"/settings/inbox/rules/{rule.pk}/active/": {"is_active": "off"},
        f"/settings/inbox/rules/{rule.pk}/move/": {"direction": "down"},
        f"/settings/inbox/rules/{rule.pk}/delete/": {},
        "/settings/inbox/replies/": {"shortcut": "new", "text": "x"},
        f"/settings/inbox/replies/{canned.pk}/": {"shortcut": "changed", "text": "x"},
        f"/settings/inbox/replies/{canned.pk}/delete/": {},
    }
    for url, data in posts.items():
        assert client_a.post(url, data, **HTMX).status_code == 403, url
    assert client_a.get(f"/settings/inbox/rules/{rule.pk}/", **HTMX).status_code == 403
    with orm(tenant_a):
        assert list(AutoReplyRule.objects.values_list("keyword", "is_active")) == [("price", True)]
        assert list(CannedResponse.objects.values_list("shortcut", flat=True)) == ["thanks"]
        assert not BusinessHours.objects.exists()
        assert not bot.load_settings().welcome_enabled


def test_a_signed_out_visitor_is_sent_to_sign_in(client_a):
    response = client_a.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_page_runs_the_same_number_of_queries_as_rules_and_replies_grow(owner_client, tenant_a):
    def count() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            assert owner_client.get(PAGE).status_code == 200
        return len(captured)

    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="k0", reply="r0")
        CannedResponse.objects.create(shortcut="s0", text="t0")
        BusinessHours.objects.create(weekday=0, opens=dt.time(9), closes=dt.time(17))
    owner_client.get(PAGE)
    small = count()
    with orm(tenant_a):
        AutoReplyRule.objects.bulk_create(AutoReplyRule(keyword=f"k{i}", reply=f"r{i}") for i in range(1, 40))
        CannedResponse.objects.bulk_create(
            CannedResponse(shortcut=f"s{i}", text=f"t{i}") for i in range(1, 40)
        )
        BusinessHours.objects.bulk_create(
            BusinessHours(weekday=d, opens=dt.time(9), closes=dt.time(17)) for d in range(1, 7)
        )
    assert count() == small


# ---------------------------------------------------------------------------------------------------
# Welcome and away messages
# ---------------------------------------------------------------------------------------------------


def test_saving_the_welcome_and_away_messages_answers_htmx_with_the_section(owner_client, tenant_a):
    response = owner_client.post(
        "/settings/inbox/messages/",
        {
            "welcome_enabled": "on",
            "welcome_text": "  Welcome to Alpha!  ",
            "away_enabled": "on",
            "away_text": "We are closed now.",
        },
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "Welcome and away messages saved." in body
    # No business hours yet: the page says the away message will never go out.
    assert re.search(r'<p id="away-warning" class="warning">', body)
    with orm(tenant_a):
        settings = bot.load_settings()
        assert (settings.welcome_enabled, settings.welcome_text) == (True, "Welcome to Alpha!")
        assert (settings.away_enabled, settings.away_text) == (True, "We are closed now.")


def test_without_script_a_save_redirects_back_to_the_page_with_a_message(owner_client):
    response = owner_client.post(
        "/settings/inbox/messages/", {"welcome_enabled": "on", "welcome_text": "Hi!"}, follow=True
    )
    assert response.redirect_chain == [("/settings/inbox/#bot-messages", 302)]
    assert b"Welcome and away messages saved." in response.content


@pytest.mark.parametrize(
    "data, code",
    [
        ({"welcome_enabled": "on", "welcome_text": "  ", "away_text": "Closed"}, "empty_welcome_text"),
        ({"welcome_text": "Hi", "away_enabled": "on", "away_text": ""}, "empty_away_text"),
        ({"welcome_enabled": "on", "welcome_text": "Hi", "away_text": "x" * 4097}, "away_text_too_long"),
    ],
)
def test_a_bad_message_is_refused_and_nothing_is_saved(owner_client, tenant_a, data, code):
    with orm(tenant_a):
        BotSettings.objects.update_or_create(pk=1, defaults={"welcome_text": "Old welcome"})
    response = owner_client.post("/settings/inbox/messages/", data, **HTMX)
    assert response.status_code == 200 and codes(response) == [code]
    with orm(tenant_a):
        settings = bot.load_settings()
        assert (settings.welcome_enabled, settings.welcome_text, settings.away_text) == (
            False,
            "Old welcome",
            "",
        )


def test_without_script_a_bad_message_shows_the_whole_page_with_the_error(owner_client):
    response = owner_client.post("/settings/inbox/messages/", {"away_enabled": "on", "away_text": ""})
    assert response.status_code == 200 and b"<html" in response.content
    assert codes(response) == ["empty_away_text"] and b'id="rules"' in response.content


# ---------------------------------------------------------------------------------------------------
# Business hours and time zone
# ---------------------------------------------------------------------------------------------------


def test_business_hours_and_the_time_zone_are_saved_and_the_bot_reads_them(owner_client, tenant_a):
    data = hours_form(
        mon=("09:00", "17:00", "", ""),
        sat=("10:00", "12:00", "13:00", "15:00"),
        fri=("22:00", "02:00"),
        tue=("08:00", "09:00"),
    )
    data["open_1"] = ""  # Tuesday unticked: closed, its times ignored
    response = owner_client.post("/settings/inbox/hours/", data, **HTMX)
    assert response.status_code == 200 and codes(response) == []
    assert "Business hours saved." in response.content.decode()
    with orm(tenant_a):
        stored = list(BusinessHours.objects.values_list("weekday", "opens", "closes"))
        settings = bot.load_settings()
        assert settings.time_zone == "Europe/Berlin"
        berlin = bot.zone_of(settings)
        assert bot.is_open(at=dt.datetime(2026, 11, 23, 9, 30, tzinfo=berlin), settings=settings)
        assert not bot.is_open(at=dt.datetime(2026, 11, 23, 17, 30, tzinfo=berlin), settings=settings)
        # Friday 22:00 to 02:00 runs into Saturday morning.
        assert bot.is_open(at=dt.datetime(2026, 11, 28, 1, 0, tzinfo=berlin), settings=settings)
        assert not bot.is_open(at=dt.datetime(2026, 11, 28, 12, 30, tzinfo=berlin), settings=settings)
    assert stored == [
        (0, dt.time(9), dt.time(17)),
        (4, dt.time(22), dt.time(2)),
        (5, dt.time(10), dt.time(12)),
        (5, dt.time(13), dt.time(15)),
    ]
    page = owner_client.get(PAGE).content.decode()
    assert 'name="opens_5" value="13:00"' in page and "<option selected>Europe/Berlin</option>" in page


@pytest.mark.parametrize(
    "data, code",
    [
        (hours_form(mon=("09:00", "17:00"), time_zone="Mars/Olympus"), "invalid_time_zone"),
        (hours_form(mon=("09:00", "13:00", "12:00", "18:00")), "overlapping_hours"),
        # Sunday 20:00 to 03:00 runs into Monday's 02:00.
        (hours_form(sun=("20:00", "03:00"), mon=("02:00", "05:00")), "overlapping_hours"),
        (hours_form(mon=("09:00", "09:00")), "empty_interval"),
        (hours_form(mon=("9 o'clock", "17:00")), "invalid_time"),
        (hours_form(mon=("09:00", "")), "invalid_time"),
        (hours_form(mon=("", "")), "missing_hours"),
        (hours_form(), "no_open_days"),
    ],
)
def test_bad_hours_are_refused_and_the_stored_week_stays(owner_client, tenant_a, data, code):
    with orm(tenant_a):
        BusinessHours.objects.create(weekday=2, opens=dt.time(8), closes=dt.time(16))
    response = owner_client.post("/settings/inbox/hours/", data, **HTMX)
    assert response.status_code == 200 and codes(response) == [code]
    with orm(tenant_a):
        assert list(BusinessHours.objects.values_list("weekday", "opens", "closes")) == [
            (2, dt.time(8), dt.time(16))
        ]
        assert bot.load_settings().time_zone == "UTC"


def test_always_open_clears_the_hours_and_says_the_away_message_will_not_go_out(owner_client, tenant_a):
    with orm(tenant_a):
        BusinessHours.objects.create(weekday=2, opens=dt.time(8), closes=dt.time(16))
        BotSettings.objects.update_or_create(pk=1, defaults={"away_enabled": True, "away_text": "Closed"})
    page = owner_client.get(PAGE).content.decode()
    assert '<p id="away-warning" class="warning" hidden>' in page
    response = owner_client.post(
        "/settings/inbox/hours/", {"time_zone": "UTC", "mode": "always", "open_0": "on"}, **HTMX
    )
    assert codes(response) == []
    # The warning beside the away message (another section) is updated out of band.
    assert '<p id="away-warning" class="warning" hx-swap-oob="true">' in response.content.decode()
    with orm(tenant_a):
        assert not BusinessHours.objects.exists()


# ---------------------------------------------------------------------------------------------------
# Auto-reply rules
# ---------------------------------------------------------------------------------------------------


def _rules(tenant: Any) -> list[tuple[str, str, str, bool]]:
    with orm(tenant):
        return list(
            AutoReplyRule.objects.order_by("position", "id").values_list(
                "keyword", "match", "reply", "is_active"
            )
        )


def test_an_added_rule_is_listed_and_tried_after_the_existing_ones(owner_client, tenant_a):
    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="hours", reply="9 to 5", position=4)
    response = owner_client.post(
        "/settings/inbox/rules/",
        {"keyword": "  Price ", "match": "contains", "reply": "From 10 EUR.", "is_active": "on"},
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200 and codes(response) == []
    assert "Rule “Price” added." in body and 'class="rule-keyword">Price<' in body
    assert _rules(tenant_a) == [
        ("hours", "contains", "9 to 5", True),
        ("Price", "contains", "From 10 EUR.", True),
    ]
    with orm(tenant_a):
        assert AutoReplyRule.objects.get(keyword="Price").position == 5


@pytest.mark.parametrize(
    "data, code",
    [
        ({"keyword": " ", "match": "contains", "reply": "x"}, "empty_keyword"),
        ({"keyword": "PRICE", "match": "contains", "reply": "x"}, "duplicate_rule"),
        ({"keyword": "new", "match": "sounds-like", "reply": "x"}, "invalid_choice"),
        ({"keyword": "new", "match": "exact", "reply": ""}, "empty_reply"),
        ({"keyword": "new", "match": "exact", "reply": "x" * 4097}, "reply_too_long"),
        ({"keyword": "k" * 101, "match": "exact", "reply": "x"}, "max_length"),
    ],
)
def test_a_bad_rule_is_refused_with_a_clear_error(owner_client, tenant_a, data, code):
    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
    response = owner_client.post("/settings/inbox/rules/", data, **HTMX)
    assert response.status_code == 200 and codes(response) == [code]
    assert _rules(tenant_a) == [("price", "contains", "10 EUR", True)]


def test_the_same_keyword_with_another_match_mode_is_a_different_rule(owner_client, tenant_a):
    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="hi", reply="Hello")
    response = owner_client.post(
        "/settings/inbox/rules/", {"keyword": "hi", "match": "exact", "reply": "Hey"}
    )
    assert response.status_code == 302
    assert len(_rules(tenant_a)) == 2


def test_a_rule_is_edited_through_its_form(owner_client, tenant_a):
    with orm(tenant_a):
        rule = AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
        AutoReplyRule.objects.create(keyword="hours", reply="9-5")
    form = owner_client.get(f"/settings/inbox/rules/{rule.pk}/", **HTMX).content.decode()
    assert "Edit the rule “price”" in form and f'action="/settings/inbox/rules/{rule.pk}/"' in form
    assert 'value="price"' in form
    # Without script the edit link opens the whole page with the form.
    assert b"<html" in owner_client.get(f"/settings/inbox/rules/{rule.pk}/").content
    bad = owner_client.post(
        f"/settings/inbox/rules/{rule.pk}/", {"keyword": "HOURS", "match": "contains", "reply": "x"}, **HTMX
    )
    assert codes(bad) == ["duplicate_rule"] and "Edit the rule “price”" in bad.content.decode()
    response = owner_client.post(
        f"/settings/inbox/rules/{rule.pk}/",
        {"keyword": "prices", "match": "exact", "reply": "11 EUR"},
        **HTMX,
    )
    assert "Rule “prices” saved." in response.content.decode()
    assert _rules(tenant_a)[0] == ("prices", "exact", "11 EUR", False)


def test_a_rule_is_turned_off_and_on_and_the_bot_follows(owner_client, tenant_a):
    with orm(tenant_a):
        rule = AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
    url = f"/settings/inbox/rules/{rule.pk}/active/"
    response = owner_client.post(url, {"is_active": "off"}, **HTMX)
    assert 'aria-pressed="false"' in response.content.decode()
    with orm(tenant_a):
        assert bot.matching_rule("price?", list(AutoReplyRule.objects.filter(is_active=True))) is None
    owner_client.post(url, {"is_active": "on"}, **HTMX)
    owner_client.post(url, {"is_active": "on"}, **HTMX)  # a repeated click keeps it on
    with orm(tenant_a):
        assert (
            bot.matching_rule("price?", list(AutoReplyRule.objects.filter(is_active=True))).reply == "10 EUR"
        )


def test_moving_a_rule_up_makes_the_bot_try_it_first(owner_client, tenant_a):
    with orm(tenant_a):
        first = AutoReplyRule.objects.create(keyword="order", reply="About your order")
        second = AutoReplyRule.objects.create(keyword="order status", reply="Your order status")
    assert (
        owner_client.post(f"/settings/inbox/rules/{second.pk}/move/", {"direction": "up"}, **HTMX).status_code
        == 200
    )
    with orm(tenant_a):
        rules = list(AutoReplyRule.objects.filter(is_active=True))
        assert [r.keyword for r in rules] == ["order status", "order"]
        assert bot.matching_rule("what is my order status", rules).reply == "Your order status"
    # At the top already: nothing moves; a direction that is not one is refused without a 500.
    owner_client.post(f"/settings/inbox/rules/{second.pk}/move/", {"direction": "up"}, **HTMX)
    bad = owner_client.post(f"/settings/inbox/rules/{first.pk}/move/", {"direction": "sideways"}, **HTMX)
    assert bad.status_code == 200 and "Move a rule up or down." in bad.content.decode()
    assert [r[0] for r in _rules(tenant_a)] == ["order status", "order"]


def test_a_rule_is_deleted(owner_client, tenant_a):
    with orm(tenant_a):
        rule = AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
    response = owner_client.post(f"/settings/inbox/rules/{rule.pk}/delete/", **HTMX)
    assert "Rule “price” deleted." in response.content.decode()
    assert _rules(tenant_a) == []
    assert owner_client.post(f"/settings/inbox/rules/{rule.pk}/delete/", **HTMX).status_code == 404


# ---------------------------------------------------------------------------------------------------
# Saved replies
# ---------------------------------------------------------------------------------------------------


def test_a_saved_reply_is_added_and_agents_find_it_in_the_composer(
    owner_client, client_b, tenant_a, tenant_b
):
    response = owner_client.post(
        "/settings/inbox/replies/",
        {"shortcut": "/Thanks", "title": "Thank you", "text": "Thank you for writing to us!"},
        **HTMX,
    )
    assert codes(response) == [] and "Saved reply /thanks added." in response.content.decode()
    agent = make_agent(tenant_a, email="composer.agent@alpha.test", role="agent")
    login(owner_client, tenant_a, agent.user)
    found = owner_client.get("/inbox/canned/", {"q": "than"}).json()["results"]
    assert found == [{"shortcut": "thanks", "title": "Thank you", "text": "Thank you for writing to us!"}]
    # Another tenant's composer knows nothing of it.
    with orm(tenant_b):
        from django.contrib.auth import get_user_model

        login(client_b, tenant_b, get_user_model().objects.get(email="owner@beta.test"))
    assert client_b.get("/inbox/canned/", {"q": "than"}).json()["results"] == []


@pytest.mark.parametrize(
    "data, code",
    [
        ({"shortcut": "THANKS", "text": "Again"}, "duplicate_shortcut"),
        ({"shortcut": "/", "text": "x"}, "empty_shortcut"),
        ({"shortcut": "thank you", "text": "x"}, "invalid_shortcut"),
        ({"shortcut": "danke-schön", "text": "x"}, "invalid_shortcut"),
        ({"shortcut": "s" * 41, "text": "x"}, "shortcut_too_long"),
        ({"shortcut": "new", "text": "  "}, "empty_text"),
        ({"shortcut": "new", "text": "x" * 4097}, "text_too_long"),
        ({"shortcut": "new", "title": "t" * 101, "text": "x"}, "max_length"),
    ],
)
def test_a_bad_saved_reply_is_refused_with_a_clear_error(owner_client, tenant_a, data, code):
    with orm(tenant_a):
        CannedResponse.objects.create(shortcut="thanks", text="Thank you!")
    response = owner_client.post("/settings/inbox/replies/", data, **HTMX)
    assert response.status_code == 200 and codes(response) == [code]
    with orm(tenant_a):
        assert list(CannedResponse.objects.values_list("shortcut", "text")) == [("thanks", "Thank you!")]


def test_a_saved_reply_is_edited_keeping_its_own_shortcut_and_deleted(owner_client, tenant_a):
    with orm(tenant_a):
        canned = CannedResponse.objects.create(shortcut="thanks", text="Thank you!")
        CannedResponse.objects.create(shortcut="bye", text="Bye!")
    url = f"/settings/inbox/replies/{canned.pk}/"
    assert "Edit /thanks" in owner_client.get(url, **HTMX).content.decode()
    taken = owner_client.post(url, {"shortcut": "bye", "text": "x"}, **HTMX)
    assert codes(taken) == ["duplicate_shortcut"]
    response = owner_client.post(url, {"shortcut": "thanks", "title": "", "text": "Many thanks!"}, **HTMX)
    assert "Saved reply /thanks saved." in response.content.decode()
    with orm(tenant_a):
        assert CannedResponse.objects.get(pk=canned.pk).text == "Many thanks!"
    owner_client.post(f"/settings/inbox/replies/{canned.pk}/delete/", **HTMX)
    with orm(tenant_a):
        assert list(CannedResponse.objects.values_list("shortcut", flat=True)) == ["bye"]


# ---------------------------------------------------------------------------------------------------
# Tenant isolation
# ---------------------------------------------------------------------------------------------------


def test_an_admin_of_one_tenant_cannot_see_or_change_another_tenants_settings(
    owner_client, tenant_a, tenant_b
):
    with orm(tenant_b):
        # Ids are per schema: beta's rows get ids alpha does not have.
        AutoReplyRule.objects.create(id=90_001, keyword="beta-secret", reply="Beta only")
        CannedResponse.objects.create(id=90_002, shortcut="beta-secret", text="Beta only")
    page = owner_client.get(PAGE).content.decode()
    assert "beta-secret" not in page and "Beta only" not in page
    rule_urls = ["/settings/inbox/rules/90001/", "/settings/inbox/replies/90002/"]
    for url in rule_urls:
        assert owner_client.get(url, **HTMX).status_code == 404
        assert (
            owner_client.post(url, {"keyword": "x", "shortcut": "x", "reply": "x", "text": "x"}).status_code
            == 404
        )
    for url in (
        "/settings/inbox/rules/90001/active/",
        "/settings/inbox/rules/90001/move/",
        "/settings/inbox/rules/90001/delete/",
        "/settings/inbox/replies/90002/delete/",
    ):
        assert owner_client.post(url, {"is_active": "off", "direction": "up"}).status_code == 404
    owner_client.post("/settings/inbox/messages/", {"welcome_enabled": "on", "welcome_text": "Alpha hi"})
    with orm(tenant_b):
        assert list(AutoReplyRule.objects.values_list("pk", "keyword", "is_active")) == [
            (90_001, "beta-secret", True)
        ]
        assert CannedResponse.objects.get().text == "Beta only"
        assert not bot.load_settings().welcome_enabled


def test_a_session_of_another_tenant_opens_nothing(client_b, tenant_a, owner_a):
    login(client_b, tenant_a, owner_a)
    assert client_b.get(PAGE).status_code == 302


# ---------------------------------------------------------------------------------------------------
# End to end: what the page saves is what the bot says
# ---------------------------------------------------------------------------------------------------


def test_a_rule_and_a_welcome_saved_on_the_page_answer_an_inbound_message(
    owner_client, public_client, tenant_a, channel_a
):
    owner_client.post(
        "/settings/inbox/rules/",
        {"keyword": "delivery", "match": "contains", "reply": "We deliver in 2 days.", "is_active": "on"},
    )
    owner_client.post(
        "/settings/inbox/rules/", {"keyword": "refund", "match": "contains", "reply": "Off rule"}
    )
    owner_client.post("/settings/inbox/messages/", {"welcome_enabled": "on", "welcome_text": "Welcome!"})
    deliver(
        public_client,
        payloads.text_event(phone_number_id=PNID_A, wa_id="15550002222", text="Delivery and refund times?"),
    )
    with orm(tenant_a):
        conversation = Conversation.objects.get(contact__wa_id="15550002222")
        replies = list(
            Message.objects.filter(conversation=conversation, direction="out", sender__isnull=True)
            .order_by("id")
            .values_list("text", "status")
        )
    # The "refund" rule was saved off (no is_active): only the active one answers, after the welcome.
    assert [text for text, _ in replies] == ["Welcome!", "We deliver in 2 days."]
    assert all(status != "queued" for _, status in replies)


# ---------------------------------------------------------------------------------------------------
# The tenant admin
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["autoreplyrule", "cannedresponse", "businesshours"])
def test_the_tenant_admin_lists_and_adds_the_inbox_settings(owner_client, tenant_a, model):
    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
        CannedResponse.objects.create(shortcut="thanks", text="Thank you!")
        BusinessHours.objects.create(weekday=0, opens=dt.time(9), closes=dt.time(17))
    assert owner_client.get(f"/admin/conversations/{model}/").status_code == 200
    assert owner_client.get(f"/admin/conversations/{model}/add/").status_code == 200


def test_the_admin_opens_the_one_bot_settings_row_and_checks_it(owner_client, tenant_a):
    response = owner_client.get("/admin/conversations/botsettings/")
    assert response.status_code == 302
    with orm(tenant_a):
        settings = bot.load_settings()
    assert response["Location"] == f"/admin/conversations/botsettings/{settings.pk}/change/"
    url = response["Location"]
    bad = owner_client.post(url, {"time_zone": "Mars/Olympus", "welcome_enabled": "on", "welcome_text": ""})
    assert bad.status_code == 200 and b"Enter the welcome message." in bad.content
    ok = owner_client.post(url, {"time_zone": "Asia/Tokyo", "away_enabled": "on", "away_text": "Closed"})
    assert ok.status_code == 302
    with orm(tenant_a):
        settings = bot.load_settings()
        assert (settings.time_zone, settings.away_text) == ("Asia/Tokyo", "Closed")
        assert BotSettings.objects.count() == 1


def test_the_admin_refuses_what_the_page_refuses(owner_client, tenant_a):
    with orm(tenant_a):
        AutoReplyRule.objects.create(keyword="price", reply="10 EUR")
        CannedResponse.objects.create(shortcut="thanks", text="Thank you!")
        BusinessHours.objects.create(weekday=0, opens=dt.time(9), closes=dt.time(17))
    rule = owner_client.post(
        "/admin/conversations/autoreplyrule/add/",
        {"keyword": "Price", "match": "contains", "reply": "x", "is_active": "on", "position": "0"},
    )
    assert b"already exists" in rule.content
    canned = owner_client.post(
        "/admin/conversations/cannedresponse/add/", {"shortcut": "/THANKS", "text": "x"}
    )
    assert b"is taken" in canned.content
    hours = owner_client.post(
        "/admin/conversations/businesshours/add/", {"weekday": "0", "opens": "16:00", "closes": "18:00"}
    )
    assert b"overlap" in hours.content
    added = owner_client.post(
        "/admin/conversations/cannedresponse/add/", {"shortcut": "/Bye", "text": "Bye!"}
    )
    assert added.status_code == 302
    with orm(tenant_a):
        assert AutoReplyRule.objects.count() == 1 and BusinessHours.objects.count() == 1
        assert sorted(CannedResponse.objects.values_list("shortcut", flat=True)) == ["bye", "thanks"]
