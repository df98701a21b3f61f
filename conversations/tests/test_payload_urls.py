"""URLs in a message's payload are the sender's: the thread never makes them a link or loads them."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from conftest import login
from conversations.models import Message
from conversations.tests.conftest import add_message, make_conversation

EVIL = ("javascript:alert(1)", "https://tracker.example/x.gif")


def referral(url):
    return {
        "source_url": url,
        "source_type": "ad",
        "source_id": "1",
        "headline": "Summer sale",
        "body": "50% off",
        "media_type": "image",
        "image_url": url,
        "video_url": url,
        "thumbnail_url": url,
    }


def payloads(url):
    """Every URL-bearing field Meta's message types (and their referral) carry, set to `url`."""
    media = {"id": "m1", "link": url, "url": url, "mime_type": "image/jpeg", "caption": "look"}
    return [
        (Message.Type.IMAGE, {"image": media, "referral": referral(url)}),
        (Message.Type.STICKER, {"sticker": media}),
        (Message.Type.VIDEO, {"video": media}),
        (Message.Type.AUDIO, {"audio": {**media, "caption": ""}}),
        (Message.Type.DOCUMENT, {"document": {**media, "filename": "offer.pdf"}, "media_url": url}),
        (
            Message.Type.LOCATION,
            {
                "location": {
                    "latitude": url,
                    "longitude": 13.4,
                    "name": "Shop",
                    "address": "Main St",
                    "url": url,
                }
            },
        ),
        (
            Message.Type.CONTACTS,
            {
                "contacts": [
                    {
                        "name": {"formatted_name": "Bob Card"},
                        "phones": [{"phone": "+4930"}],
                        "urls": [{"url": url, "type": "WORK"}],
                    }
                ]
            },
        ),
        (
            Message.Type.INTERACTIVE,
            {
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "y", "title": "Yes"},
                    "header": {"type": "image", "image": {"link": url}},
                },
                "referral": referral(url),
            },
        ),
        (Message.Type.BUTTON, {"button": {"text": "Go", "payload": url}}),
        (
            Message.Type.ORDER,
            {"order": {"catalog_id": "c", "product_items": [{"product_retailer_id": "p", "image_url": url}]}},
        ),
        (Message.Type.TEXT, {"text": {"body": "hi"}, "referral": referral(url), "profile": {"picture": url}}),
        (Message.Type.TEMPLATE, {"template": {"name": "promo", "header": {"link": url}}}),
    ]


class Attributes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values = []

    def handle_starttag(self, tag, attrs):
        self.values += [(tag, name, value or "") for name, value in attrs]


@pytest.mark.parametrize("url", EVIL)
def test_no_payload_url_becomes_a_link_or_an_image_in_the_thread(client_a, tenant_a, owner_a, url):
    c = make_conversation(tenant_a, name="Ads", messages=0)
    for kind, payload in payloads(url):
        add_message(tenant_a, c, type=kind, text="hi" if kind == Message.Type.TEXT else "", payload=payload)
    login(client_a, tenant_a, owner_a)
    pages = [
        client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true"),
        client_a.get(f"/inbox/c/{c.pk}/messages/", HTTP_HX_REQUEST="true"),
    ]
    for page in pages:
        assert page.status_code == 200
        parser = Attributes()
        parser.feed(page.content.decode())
        leaked = [
            (tag, name, value)
            for tag, name, value in parser.values
            if "tracker" in value or "javascript" in value
        ]
        assert leaked == []
    html = pages[0].content.decode()
    assert html.count('class="msg ') == len(payloads(url))
    # Shown as text instead: the ad's addresses, the location's and the contact card's, escaped.
    assert "Summer sale" in html and "50% off" in html
    assert html.count(f'<span class="payload-url">{url}</span>') >= 4 * 3 + 2


def test_a_location_with_numeric_coordinates_still_gets_our_map_link(client_a, tenant_a, owner_a):
    c = make_conversation(tenant_a, name="Map", messages=0)
    add_message(
        tenant_a,
        c,
        type=Message.Type.LOCATION,
        payload={"location": {"latitude": "52.52", "longitude": 13.4}},
    )
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{c.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'href="https://www.openstreetmap.org/?mlat=52.52&amp;mlon=13.4#map=16/52.52/13.4"' in html
