"""Settings → WhatsApp numbers → Link with QR code: who may use it, linking against the WAHA sandbox, the
live QR code until the phone links, the actions, the warnings, another tenant's number, hostile input.
Also the campaign page and service, which refuse a number without templates."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import services as campaign_services
from conftest import login, make_agent
from conversations.models import Channel
from core.errors import ServiceError
from waha.models import WahaSession
from waha.sandbox import Sandbox
from waha.testing import make_sandbox_number, make_waha_number

LINK = "/settings/whatsapp/waha/"
WARNING = "may ban a number used through one"


@pytest.fixture
def admin_client(tenant_a: Any, client_a: Client) -> Client:
    return login(client_a, tenant_a, make_agent(tenant_a, email="admin@alpha.test", role="admin").user)


def _page(number: Any) -> str:
    return f"{LINK}{number.channel.pk}/"


def test_agents_and_strangers_are_refused(tenant_a: Any, client_a: Client, waha_sandbox: Sandbox) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-one")
    assert client_a.get(LINK).status_code == 302  # to the sign-in page
    login(client_a, tenant_a, make_agent(tenant_a, email="agent@alpha.test").user)
    for url in (LINK, _page(number), f"{_page(number)}live/"):
        assert client_a.get(url).status_code == 403
    assert client_a.post(LINK, {"session": "x"}).status_code == 403
    assert client_a.post(f"{_page(number)}stop/").status_code == 403
    assert waha_sandbox.session("alpha-one").status == "WORKING"


def test_another_tenants_number_is_not_found(
    tenant_a: Any, tenant_b: Any, client_b: Client, owner_b: Any, waha_sandbox: Sandbox
) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-two")
    login(client_b, tenant_b, owner_b)
    assert client_b.get(_page(number)).status_code == 404
    assert client_b.get(f"{_page(number)}live/").status_code == 404
    assert client_b.post(f"{_page(number)}remove/").status_code == 404
    assert waha_sandbox.session("alpha-two").status == "WORKING"


def test_the_numbers_page_offers_the_link_and_the_page_warns(admin_client: Client) -> None:
    numbers = admin_client.get("/settings/whatsapp/").content.decode()
    assert f'href="{LINK}"' in numbers and "Link with QR code" in numbers
    page = admin_client.get(LINK)
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert WARNING in text and "Cloud API" in text and "cannot run campaigns" in text
    assert 'name="api_key"' in text and 'name="server_url"' in text


def test_linking_shows_the_key_once_and_the_qr_code_until_the_phone_links(
    tenant_a: Any, admin_client: Client, waha_sandbox: Sandbox
) -> None:
    response = admin_client.post(LINK, {"server_url": "", "api_key": "", "session": "shop", "name": "Desk"})
    assert response.status_code == 201
    body = response.content.decode()
    with schema_context(tenant_a.schema_name):
        waha_session = WahaSession.objects.select_related("channel").get(session="shop")
    channel = waha_session.channel
    key = waha_sandbox.session("shop").config["webhooks"][0]["hmac"]["key"]
    assert key in body and f"/webhooks/waha/{waha_session.webhook_id}/" in body
    assert "Shown this once" in body and WARNING in html.unescape(body)
    live_url = f"{LINK}{channel.pk}/live/"
    assert f'hx-get="{live_url}"' in body

    page = admin_client.get(f"{LINK}{channel.pk}/").content.decode()
    assert key not in page and f"/webhooks/waha/{waha_session.webhook_id}/" in page

    live = admin_client.get(live_url)
    assert live.status_code == 200
    fragment = live.content.decode()
    assert "<svg" in fragment and 'hx-trigger="every 3s"' in fragment

    waha_sandbox.link("shop", phone="+15550007777", push_name="<img src=x onerror=alert(1)>")
    fragment = admin_client.get(live_url).content.decode()
    assert "<svg" not in fragment and "hx-trigger" not in fragment  # linked: the page stops polling
    assert "+15550007777" in fragment
    assert "<img src=x" not in fragment and "&lt;img src=x" in fragment
    listing = admin_client.get(LINK).content.decode()
    assert "+15550007777" in listing and "working" in listing


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"server_url": "javascript:alert(1)", "api_key": "k", "session": "s"}, "invalid_server_url"),
        ({"server_url": "", "api_key": "", "session": "<b>x</b>"}, "invalid_session_name"),
        ({"server_url": "https://waha.example.com", "api_key": "", "session": "s"}, "missing_api_key"),
    ],
)
def test_bad_input_is_shown_on_the_form(
    admin_client: Client, waha_sandbox: Sandbox, data: dict[str, str], code: str
) -> None:
    response = admin_client.post(LINK, data)
    assert response.status_code == 400
    body = response.content.decode()
    assert f"[{code}]" in body and "<b>x</b>" not in body
    assert waha_sandbox.sessions() == []


def test_an_unreachable_server_is_said_not_a_500(admin_client: Client, waha_sandbox: Sandbox) -> None:
    response = admin_client.post(LINK, {"server_url": "http://127.0.0.1:9", "api_key": "k", "session": "s"})
    assert response.status_code == 502
    assert "[waha_unreachable]" in response.content.decode()


def test_the_actions_stop_reconnect_log_out_and_remove(
    tenant_a: Any, admin_client: Client, waha_sandbox: Sandbox
) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-act")
    page = _page(number)
    assert admin_client.get(f"{page}stop/").status_code == 405
    assert admin_client.post(f"{page}explode/").status_code == 404
    assert admin_client.post(f"{page}stop/").url == page
    assert waha_sandbox.session("alpha-act").status == "STOPPED"
    admin_client.post(f"{page}reconnect/")
    assert waha_sandbox.session("alpha-act").status == "WORKING"
    admin_client.post(f"{page}logout/")
    assert waha_sandbox.session("alpha-act").me is None
    assert admin_client.post(f"{page}remove/").url == LINK
    assert waha_sandbox.sessions() == []
    assert admin_client.get(page).status_code == 404
    with schema_context(tenant_a.schema_name):
        assert Channel.objects.get(pk=number.channel.pk).status == Channel.Status.DISABLED


def test_an_action_waha_refuses_is_shown(tenant_a: Any, admin_client: Client) -> None:
    number = make_waha_number(tenant_a, server_url="http://127.0.0.1:9")
    response = admin_client.post(f"{_page(number)}stop/", follow=True)
    assert response.status_code == 200
    assert "[waha_unreachable]" in response.content.decode()


def test_a_waha_number_cannot_run_a_campaign_and_the_page_says_why(
    tenant_a: Any, admin_client: Client
) -> None:
    number = make_waha_number(tenant_a)
    page = admin_client.get("/campaigns/new/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "cannot run campaigns" in text and "no message templates" in text
    assert f'<option value="{number.channel.pk}"' not in text
    with schema_context(tenant_a.schema_name), pytest.raises(ServiceError) as caught:
        campaign_services.create_campaign(
            name="Promo", channel=number.channel, template="hello", language="en", audience={}
        )
    assert caught.value.code == "channel_without_templates"
    assert caught.value.status == 422
