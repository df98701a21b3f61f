"""The WAHA sandbox: the API subset the CRM uses, its signed webhooks, QR codes, acks, failures and
disconnections on demand, its control endpoints and page, and simulate_inbound for WAHA numbers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from waha.client import RetryClass, WahaClient, WahaError
from waha.sandbox import DEFAULT_API_KEY, Sandbox, SandboxError, Webhook, build_parser, retry_delay
from waha.testing import WAHA_PHONE_A, make_sandbox_number

ROOT = Path(__file__).resolve().parents[2]
KEY = {"X-Api-Key": DEFAULT_API_KEY}
CUSTOMER = "+15557654321"
CUSTOMER_CHAT = "15557654321@c.us"


def api(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{sandbox.base}{path}", headers=KEY, timeout=10, **kwargs)


def config(url: str = "http://testserver/hook/", key: str = "hook-key", events: Any = None) -> dict[str, Any]:
    return {"webhooks": [{"url": url, "events": events or ["*"], "hmac": {"key": key}}]}


def status_of(sandbox: Sandbox, name: str) -> str:
    return str(api(sandbox, "GET", f"/api/sessions/{name}").json()["status"])


def verified(webhook: Webhook, key: str = "hook-key") -> bool:
    expected = hmac.new(key.encode(), webhook.body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(webhook.headers.get("X-Webhook-Hmac", ""), expected)


def statuses(webhooks: list[Webhook]) -> list[str]:
    return [w.payload["status"] for w in webhooks if w.event == "session.status"]


@pytest.fixture
def linked(waha_sandbox: Sandbox) -> str:
    """A WORKING session "shop" (as +1 555 000 1111) whose webhooks wait in the outbox."""
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    waha_sandbox.link("shop")
    waha_sandbox.take_webhooks()
    return "shop"


# -- the API ---------------------------------------------------------------------------------------------
def test_every_api_call_needs_the_api_key(waha_sandbox: Sandbox) -> None:
    assert httpx.get(f"{waha_sandbox.base}/api/sessions").status_code == 401
    wrong = httpx.get(f"{waha_sandbox.base}/api/sessions", headers={"X-Api-Key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["statusCode"] == 401
    forged_send = httpx.post(
        f"{waha_sandbox.base}/api/sendText",
        headers={"X-Api-Key": ""},
        json={"session": "x", "chatId": CUSTOMER_CHAT, "text": "hi"},
    )
    assert forged_send.status_code == 401
    assert api(waha_sandbox, "GET", "/api/sessions").json() == []
    assert waha_sandbox.sent() == []


def test_a_session_starts_asks_for_its_qr_code_and_works_once_linked(waha_sandbox: Sandbox) -> None:
    created = api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    assert created.status_code == 201
    # Without a start_delay the QR code is asked for at once (make run answers STARTING, as WAHA does).
    assert created.json()["status"] == "SCAN_QR_CODE" and created.json()["me"] is None
    assert api(waha_sandbox, "GET", "/api/sessions/shop").json()["status"] == "SCAN_QR_CODE"
    assert api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop"}).status_code == 422
    qr = api(waha_sandbox, "GET", "/api/shop/auth/qr", params={"format": "raw"})
    assert qr.status_code == 200 and qr.json()["value"].startswith("2@")
    image = api(waha_sandbox, "GET", "/api/shop/auth/qr")
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")

    waha_sandbox.link("shop", phone="+1 555 000 1111", push_name="Alpha Shop")
    session = api(waha_sandbox, "GET", "/api/sessions/shop").json()
    assert session["status"] == "WORKING"
    assert session["me"] == {"id": "15550001111@c.us", "pushName": "Alpha Shop"}
    assert api(waha_sandbox, "GET", "/api/shop/auth/qr", params={"format": "raw"}).status_code == 422

    webhooks = waha_sandbox.take_webhooks()
    assert statuses(webhooks) == ["STARTING", "SCAN_QR_CODE", "WORKING"]
    assert webhooks[-1].data["me"] == {"id": "15550001111@c.us", "pushName": "Alpha Shop"}
    assert [s["status"] for s in webhooks[-1].payload["statuses"]] == ["STARTING", "SCAN_QR_CODE", "WORKING"]


def test_stop_start_keep_the_link_logout_forgets_it_delete_removes_the_session(
    waha_sandbox: Sandbox, linked: str
) -> None:
    assert api(waha_sandbox, "POST", "/api/sessions/shop/stop").json()["status"] == "STOPPED"
    # WAHA keeps the device's auth: started again, the session works without a new QR code.
    assert api(waha_sandbox, "POST", "/api/sessions/shop/start").json()["status"] == "WORKING"
    assert api(waha_sandbox, "POST", "/api/sessions/shop/start").status_code == 422  # already started
    assert api(waha_sandbox, "POST", "/api/sessions/shop/restart").json()["status"] == "WORKING"
    assert api(waha_sandbox, "POST", "/api/sessions/shop/logout").json()["status"] == "STOPPED"
    api(waha_sandbox, "POST", "/api/sessions/shop/start")
    assert status_of(waha_sandbox, "shop") == "SCAN_QR_CODE"
    assert statuses(waha_sandbox.take_webhooks()) == [
        "STOPPED",
        "STARTING",
        "WORKING",
        "STOPPED",
        "STARTING",
        "WORKING",
        "STOPPED",
        "STARTING",
        "SCAN_QR_CODE",
    ]
    updated = api(waha_sandbox, "PUT", "/api/sessions/shop", json={"config": config(key="new-key")})
    assert updated.json()["config"]["webhooks"][0]["hmac"]["key"] == "new-key"
    assert api(waha_sandbox, "PUT", "/api/sessions/shop", json={"config": "x"}).status_code == 400
    assert api(waha_sandbox, "DELETE", "/api/sessions/shop").status_code == 200
    assert api(waha_sandbox, "GET", "/api/sessions/shop").status_code == 404
    assert api(waha_sandbox, "POST", "/api/sessions/shop/start").status_code == 404
    assert api(waha_sandbox, "POST", "/api/sessions/shop/explode").status_code == 404


def test_hostile_input_gets_a_clear_error_never_a_crash(waha_sandbox: Sandbox, linked: str) -> None:
    assert api(waha_sandbox, "POST", "/api/sessions", json={"name": "../etc"}).status_code == 400
    assert api(waha_sandbox, "POST", "/api/sessions", content=b"[1, 2").status_code == 400
    assert api(waha_sandbox, "POST", "/api/sendText", content=b"null").status_code == 400
    for body in (
        {"session": "shop", "chatId": "not-a-chat", "text": "hi"},
        {"session": "shop", "chatId": "1555@c.us'; drop", "text": "hi"},
        {"session": "shop", "chatId": CUSTOMER_CHAT, "text": ""},
        {"session": "shop", "chatId": CUSTOMER_CHAT, "text": ["hi"]},
        {"session": "shop", "chatId": CUSTOMER_CHAT, "file": {"mimetype": "image/png"}},
        {"session": "shop", "chatId": CUSTOMER_CHAT, "latitude": "north", "longitude": 1},
    ):
        endpoint = "sendImage" if "file" in body else "sendLocation" if "latitude" in body else "sendText"
        response = api(waha_sandbox, "POST", f"/api/{endpoint}", json=body)
        assert response.status_code == 400, body
        assert response.json()["statusCode"] == 400
    assert api(waha_sandbox, "POST", "/api/sendText", json={"session": "nope"}).status_code == 404
    assert api(waha_sandbox, "GET", "/api/files/shop/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert waha_sandbox.sent() == []


def test_sends_answer_with_message_ids_then_echo_and_ack_in_order(waha_sandbox: Sandbox, linked: str) -> None:
    answer = api(
        waha_sandbox,
        "POST",
        "/api/sendText",
        json={"session": "shop", "chatId": CUSTOMER_CHAT, "text": "Hi!"},
    )
    assert answer.status_code == 201
    message_id = answer.json()["id"]
    assert message_id.startswith(f"true_{CUSTOMER_CHAT}_") and len(message_id.rsplit("_", 1)[1]) == 20
    webhooks = waha_sandbox.wait_for_webhooks(4)
    assert [w.event for w in webhooks] == ["message.any", "message.ack", "message.ack", "message.ack"]
    echo = webhooks[0].payload
    assert echo["id"] == message_id and echo["fromMe"] is True and echo["source"] == "api"
    assert echo["from"] == "15550001111@c.us" and echo["to"] == CUSTOMER_CHAT and echo["body"] == "Hi!"
    assert [(w.payload["ack"], w.payload["ackName"]) for w in webhooks[1:]] == [
        (1, "SERVER"),
        (2, "DEVICE"),
        (3, "READ"),
    ]
    assert all(w.payload["id"] == message_id and w.payload["to"] == CUSTOMER_CHAT for w in webhooks[1:])
    assert [s["id"] for s in waha_sandbox.sent("shop")] == [message_id]
    assert waha_sandbox.sent("other") == []


def test_acks_can_be_switched_off(waha_sandbox: Sandbox, linked: str) -> None:
    waha_sandbox.configure(auto_acks=False)
    api(waha_sandbox, "POST", "/api/sendText", json={"session": "shop", "chatId": CUSTOMER_CHAT, "text": "x"})
    assert [w.event for w in waha_sandbox.wait_for_webhooks(1)] == ["message.any"]


def test_media_sends_location_reaction_seen_and_typing(waha_sandbox: Sandbox, linked: str) -> None:
    png = b"\x89PNG\r\n\x1a\n-a-picture"
    image = api(
        waha_sandbox,
        "POST",
        "/api/sendImage",
        json={
            "session": "shop",
            "chatId": CUSTOMER_CHAT,
            "caption": "Look",
            "file": {"mimetype": "image/png", "filename": "a.png", "data": base64.b64encode(png).decode()},
        },
    ).json()
    assert image["hasMedia"] is True and image["body"] == "Look"
    # The file it sent is served back with the key (as WAHA serves media), never without.
    served = httpx.get(image["media"]["url"], headers=KEY)
    assert served.content == png and served.headers["content-type"] == "image/png"
    assert httpx.get(image["media"]["url"]).status_code == 401
    voice = {
        "session": "shop",
        "chatId": CUSTOMER_CHAT,
        "file": {"mimetype": "audio/ogg", "url": "http://x/a"},
    }
    assert api(waha_sandbox, "POST", "/api/sendVoice", json={**voice, "convert": True}).status_code == 201
    assert api(waha_sandbox, "POST", "/api/sendFile", json=voice).status_code == 201
    location = api(
        waha_sandbox,
        "POST",
        "/api/sendLocation",
        json={
            "session": "shop",
            "chatId": CUSTOMER_CHAT,
            "latitude": 52.52,
            "longitude": 13.4,
            "title": "Shop",
        },
    ).json()
    assert location["location"] == {"latitude": 52.52, "longitude": 13.4, "description": "Shop"}
    reaction = {"session": "shop", "messageId": image["id"], "reaction": "👍"}
    assert api(waha_sandbox, "PUT", "/api/reaction", json=reaction).status_code == 200
    seen = {"session": "shop", "chatId": CUSTOMER_CHAT, "messageIds": ["false_x_1"]}
    assert api(waha_sandbox, "POST", "/api/sendSeen", json=seen).status_code == 200
    for endpoint in ("startTyping", "stopTyping"):
        body = {"session": "shop", "chatId": CUSTOMER_CHAT}
        assert api(waha_sandbox, "POST", f"/api/{endpoint}", json=body).status_code == 200
    assert [s["endpoint"] for s in waha_sandbox.sent()] == [
        "sendImage",
        "sendVoice",
        "sendFile",
        "sendLocation",
        "reaction",
        "sendSeen",
        "startTyping",
        "stopTyping",
    ]


def test_a_session_that_is_not_working_refuses_sends(waha_sandbox: Sandbox) -> None:
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    body = {"session": "shop", "chatId": CUSTOMER_CHAT, "text": "hi"}
    refused = api(waha_sandbox, "POST", "/api/sendText", json=body)
    assert refused.status_code == 422 and refused.json()["status"] == "SCAN_QR_CODE"
    seen = api(waha_sandbox, "POST", "/api/sendSeen", json={"session": "shop", "chatId": CUSTOMER_CHAT})
    assert seen.status_code == 422
    assert waha_sandbox.sent() == []


# -- signatures ------------------------------------------------------------------------------------------
def test_every_webhook_is_signed_with_the_sessions_key_and_tampering_shows(
    waha_sandbox: Sandbox, linked: str
) -> None:
    waha_sandbox.emit_inbound("shop", CUSTOMER, text="Hello")
    webhooks = waha_sandbox.take_webhooks()
    assert [w.event for w in webhooks] == ["message", "message.any"]
    for webhook in webhooks:
        assert webhook.headers["X-Webhook-Hmac-Algorithm"] == "sha512"
        assert webhook.headers["X-Webhook-Request-Id"] and webhook.headers["X-Webhook-Timestamp"].isdigit()
        assert verified(webhook)
        assert not verified(webhook, key="another-key")
        tampered = Webhook(webhook.url, webhook.headers, webhook.body.replace(b"Hello", b"Hellp"))
        assert not verified(tampered)
    assert webhooks[0].headers["X-Webhook-Request-Id"] != webhooks[1].headers["X-Webhook-Request-Id"]


def test_webhooks_go_only_to_subscribed_urls_and_unsigned_without_a_key(waha_sandbox: Sandbox) -> None:
    hooks = {
        "webhooks": [
            {"url": "http://testserver/a/", "events": ["message"], "hmac": {"key": "a"}},
            {
                "url": "http://testserver/b/",
                "events": ["session.status"],
                "customHeaders": [{"name": "X-Tenant", "value": "alpha"}],
            },
        ]
    }
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": hooks})
    waha_sandbox.link("shop")
    waha_sandbox.emit_inbound("shop", CUSTOMER, text="hi")
    webhooks = waha_sandbox.take_webhooks()
    assert {(w.path, w.event) for w in webhooks} == {("/b/", "session.status"), ("/a/", "message")}
    for webhook in webhooks:
        if webhook.path == "/b/":
            assert "X-Webhook-Hmac" not in webhook.headers and webhook.headers["X-Tenant"] == "alpha"
        else:
            assert verified(webhook, key="a")


# -- QR codes, links, disconnections ------------------------------------------------------------------
def test_the_qr_code_rotates(waha_sandbox: Sandbox) -> None:
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    first = waha_sandbox.qr_value("shop")
    assert waha_sandbox.qr_value("shop") == first  # the same until WhatsApp shows the next one
    waha_sandbox.take_webhooks()
    rotated = waha_sandbox.rotate_qr("shop")
    assert (
        rotated != first
        and api(waha_sandbox, "GET", "/api/shop/auth/qr?format=raw").json()["value"] == rotated
    )
    # WAHA says SCAN_QR_CODE again each time the QR code changes.
    assert statuses(waha_sandbox.take_webhooks()) == ["SCAN_QR_CODE"]
    # And by itself, every qr_rotate_seconds.
    waha_sandbox.configure(qr_rotate_seconds=0.05)
    changed = {waha_sandbox.qr_value("shop")}
    for _ in range(200):
        changed.add(waha_sandbox.qr_value("shop"))
        if len(changed) > 1:
            break
        threading.Event().wait(0.01)
    assert len(changed) > 1


def test_with_a_start_delay_the_answer_is_starting_and_the_qr_code_follows(waha_sandbox: Sandbox) -> None:
    waha_sandbox.configure(start_delay=0.05)
    created = api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    assert created.json()["status"] == "STARTING"
    assert statuses(waha_sandbox.wait_for_webhooks(2)) == ["STARTING", "SCAN_QR_CODE"]
    assert status_of(waha_sandbox, "shop") == "SCAN_QR_CODE"


def test_qr_rotation_is_announced_in_make_run_mode(waha_sandbox: Sandbox) -> None:
    waha_sandbox.configure(announce_qr_rotation=True, qr_rotate_seconds=0.02)
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    webhooks = waha_sandbox.wait_for_webhooks(4)
    assert statuses(webhooks)[:4] == ["STARTING", "SCAN_QR_CODE", "SCAN_QR_CODE", "SCAN_QR_CODE"]
    waha_sandbox.link("shop")
    waha_sandbox.take_webhooks()
    threading.Event().wait(0.1)
    assert "SCAN_QR_CODE" not in statuses(waha_sandbox.take_webhooks())  # no more once linked


def test_link_needs_a_qr_code_and_disconnect_fails_the_session(waha_sandbox: Sandbox, linked: str) -> None:
    with pytest.raises(SandboxError) as refused:
        waha_sandbox.link("shop")
    assert refused.value.status == 409
    with pytest.raises(SandboxError):
        waha_sandbox.link("nobody")
    waha_sandbox.disconnect("shop")
    assert api(waha_sandbox, "GET", "/api/sessions/shop").json()["status"] == "FAILED"
    with pytest.raises(SandboxError):
        waha_sandbox.emit_inbound("shop", CUSTOMER, text="lost")
    # A restart reconnects (the device is still linked) ...
    api(waha_sandbox, "POST", "/api/sessions/shop/restart")
    assert status_of(waha_sandbox, "shop") == "WORKING"
    # ... unless the phone unlinked it too: then a new QR code.
    waha_sandbox.disconnect("shop", logout=True)
    api(waha_sandbox, "POST", "/api/sessions/shop/restart")
    assert status_of(waha_sandbox, "shop") == "SCAN_QR_CODE"
    assert statuses(waha_sandbox.take_webhooks()) == [
        "FAILED",
        "STOPPED",
        "STARTING",
        "WORKING",
        "FAILED",
        "STOPPED",
        "STARTING",
        "SCAN_QR_CODE",
    ]


# -- failures on demand ----------------------------------------------------------------------------------
def test_failures_on_demand_then_sends_work_again(waha_sandbox: Sandbox, linked: str) -> None:
    client = WahaClient(waha_sandbox.base, DEFAULT_API_KEY)
    waha_sandbox.fail("http", count=2, status=500)
    for _ in range(2):
        with pytest.raises(WahaError) as failed:
            client.send_text("shop", CUSTOMER_CHAT, "hi")
        assert failed.value.status == 500 and failed.value.retry_class == RetryClass.RETRY
    waha_sandbox.fail("http", status=400)
    with pytest.raises(WahaError) as failed:
        client.send_text("shop", CUSTOMER_CHAT, "hi")
    assert failed.value.retry_class == RetryClass.PERMANENT
    waha_sandbox.fail("reset")
    with pytest.raises(WahaError) as failed:
        client.send_text("shop", CUSTOMER_CHAT, "hi")
    assert failed.value.retry_class == RetryClass.UNCERTAIN  # the request went out: maybe sent
    waha_sandbox.fail("http", session="another")
    assert client.send_text("shop", CUSTOMER_CHAT, "hi").startswith(f"true_{CUSTOMER_CHAT}_")
    assert len(waha_sandbox.sent()) == 1
    with pytest.raises(ValueError):
        waha_sandbox.fail("explode")


def test_the_client_drives_a_whole_session(waha_sandbox: Sandbox) -> None:
    client = WahaClient(waha_sandbox.base, DEFAULT_API_KEY)
    created = client.create_session("shop", "http://testserver/hook/", "hook-key")
    assert created.status == "SCAN_QR_CODE"
    assert client.get_qr("shop").startswith("2@")
    waha_sandbox.link("shop")
    info = client.get_session("shop")
    assert (info.status, info.me_id) == ("WORKING", "15550001111@c.us")
    assert client.stop_session("shop").status == "STOPPED"
    with pytest.raises(WahaError) as failed:
        WahaClient(waha_sandbox.base, "wrong").get_session("shop")
    assert failed.value.retry_class == RetryClass.AUTH


# -- the phone's side -----------------------------------------------------------------------------------
def test_inbound_messages_of_every_shape(waha_sandbox: Sandbox, linked: str) -> None:
    text_id = waha_sandbox.emit_inbound("shop", CUSTOMER, text="Hi", name="Sheena")
    message, echo = waha_sandbox.take_webhooks()
    assert message.event == "message" and echo.event == "message.any" and message.payload == echo.payload
    payload = message.payload
    assert payload["id"] == text_id and text_id.startswith(f"false_{CUSTOMER_CHAT}_")
    assert (payload["from"], payload["to"], payload["fromMe"], payload["body"]) == (
        CUSTOMER_CHAT,
        "15550001111@c.us",
        False,
        "Hi",
    )
    assert payload["_data"]["notifyName"] == "Sheena"

    waha_sandbox.emit_inbound(
        "shop",
        CUSTOMER,
        text="See",
        media={"content": b"%PDF", "mimetype": "application/pdf", "filename": "a.pdf"},
    )
    media = waha_sandbox.take_webhooks()[0].payload
    assert media["hasMedia"] is True and media["media"]["mimetype"] == "application/pdf"
    assert httpx.get(media["media"]["url"], headers=KEY).content == b"%PDF"

    waha_sandbox.emit_inbound("shop", CUSTOMER, text="hidden", lid="123456789012345")
    lid = waha_sandbox.take_webhooks()[0].payload
    assert lid["from"] == "123456789012345@lid" and lid["_data"]["Info"]["SenderAlt"].startswith(
        "15557654321@"
    )

    waha_sandbox.emit_inbound("shop", CUSTOMER, text="all", group=True)
    group = waha_sandbox.take_webhooks()[0].payload
    assert group["from"].endswith("@g.us") and group["participant"] == CUSTOMER_CHAT

    with pytest.raises(SandboxError):
        waha_sandbox.emit_inbound("shop", "not a number", text="x")


def test_from_phone_reactions_revokes_and_edits(waha_sandbox: Sandbox, linked: str) -> None:
    typed = waha_sandbox.emit_from_phone("shop", CUSTOMER, "Sent from my phone")
    webhooks = waha_sandbox.wait_for_webhooks(4)
    assert [w.event for w in webhooks] == ["message.any", "message.ack", "message.ack", "message.ack"]
    assert webhooks[0].payload["id"] == typed and webhooks[0].payload["source"] == "app"
    assert webhooks[0].payload["fromMe"] is True and webhooks[0].payload["to"] == CUSTOMER_CHAT

    inbound = waha_sandbox.emit_inbound("shop", CUSTOMER, text="Hi")
    waha_sandbox.take_webhooks()
    waha_sandbox.emit_reaction("shop", CUSTOMER, typed, "❤️")
    waha_sandbox.emit_revoked("shop", inbound)
    edit_id = waha_sandbox.emit_edited("shop", inbound, "Hi there")
    reaction, revoked, edited = waha_sandbox.take_webhooks()
    assert reaction.event == "message.reaction"
    assert reaction.payload["reaction"] == {"text": "❤️", "messageId": typed}
    assert (
        revoked.event == "message.revoked"
        and revoked.payload["revokedMessageId"] == inbound.rsplit("_", 1)[1]
    )
    assert revoked.payload["after"]["id"] == inbound and revoked.payload["before"] is None
    assert edited.event == "message.edited" and edited.payload["id"] == edit_id
    assert (
        edited.payload["editedMessageId"] == inbound.rsplit("_", 1)[1]
        and edited.payload["body"] == "Hi there"
    )


def test_reset_forgets_everything_and_drops_queued_webhooks(waha_sandbox: Sandbox, linked: str) -> None:
    waha_sandbox.configure(ack_delay=0.2)
    api(waha_sandbox, "POST", "/api/sendText", json={"session": "shop", "chatId": CUSTOMER_CHAT, "text": "x"})
    waha_sandbox.reset()
    threading.Event().wait(0.8)
    assert waha_sandbox.take_webhooks() == [] and waha_sandbox.sent() == []
    assert api(waha_sandbox, "GET", "/api/sessions").json() == []


# -- make run: real POSTs, retries, the state file, the page, the command line -----------------------------
class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.received.append((dict(self.headers), body))
        server.paths.append(self.path)
        status = server.answers.pop(0) if server.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.answers, server.paths = [], [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _wait(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        threading.Event().wait(0.01)
    raise AssertionError("never happened")


def test_in_deliver_mode_webhooks_are_posted_and_retried(waha_sandbox: Sandbox, receiver: Any) -> None:
    waha_sandbox.configure(deliver=True)
    receiver.answers = [500, 503]
    hooks = config(url=receiver.url)
    hooks["webhooks"][0]["retries"] = {"policy": "constant", "delaySeconds": 0.01, "attempts": 3}
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "start": False, "config": hooks})
    waha_sandbox.start_session("shop")
    # STARTING and SCAN_QR_CODE, each refused once, then delivered on the retry.
    _wait(lambda: len(receiver.received) >= 4)
    bodies = [json.loads(body)["payload"]["status"] for _, body in receiver.received]
    assert Counter(bodies) == {"STARTING": 2, "SCAN_QR_CODE": 2}
    headers, body = receiver.received[-1]
    expected = hmac.new(b"hook-key", body, hashlib.sha512).hexdigest()
    assert {k.lower(): v for k, v in headers.items()}["x-webhook-hmac"] == expected
    assert waha_sandbox.take_webhooks() == []


def test_undeliverable_webhooks_are_kept_after_their_retries(waha_sandbox: Sandbox, receiver: Any) -> None:
    waha_sandbox.configure(deliver=True)
    receiver.answers = [500] * 4
    hooks = config(url=receiver.url, events=["session.status"])
    hooks["webhooks"][0]["retries"] = {"policy": "linear", "delaySeconds": 0.01, "attempts": 1}
    waha_sandbox.create_session("shop", config=hooks, start=False)
    waha_sandbox.start_session("shop")
    _wait(lambda: len(waha_sandbox.state.undelivered) == 2)
    assert {w.payload["status"] for w in waha_sandbox.state.undelivered} == {"STARTING", "SCAN_QR_CODE"}


def test_retry_policies() -> None:
    assert [
        retry_delay({"policy": "exponential", "delaySeconds": 2, "attempts": 3}, n) for n in (1, 2, 3, 4)
    ] == [
        2,
        4,
        8,
        None,
    ]
    assert [retry_delay({"policy": "linear", "delaySeconds": 2, "attempts": 2}, n) for n in (1, 2)] == [2, 4]
    assert retry_delay(None, 1) is None


def test_sessions_survive_a_restart_with_a_state_file(tmp_path: Any) -> None:
    path = str(tmp_path / "waha.json")
    first = Sandbox(state_file=path)
    try:
        first.create_session("linked", config=config())
        first.link("linked")
        first.create_session("waiting", config=config())
    finally:
        first.server.server_close()
    second = Sandbox(state_file=path)
    try:
        assert second.session("linked").status == "WORKING"
        assert second.session("linked").me == {"id": "15550001111@c.us", "pushName": "Sandbox Phone"}
        assert second.session("linked").config == config()
        assert second.session("waiting").status == "STOPPED"
    finally:
        second.server.server_close()
    (tmp_path / "broken.json").write_text("{not json")
    assert Sandbox(state_file=str(tmp_path / "broken.json")).sessions() == []


def test_the_control_endpoints_and_the_page(waha_sandbox: Sandbox) -> None:
    base = waha_sandbox.base
    api(waha_sandbox, "POST", "/api/sessions", json={"name": "shop", "config": config()})
    page = httpx.get(f"{base}/").text
    assert "shop" in page and "Scan (link)" in page and "<svg" in page
    # The page's button: a form post, answered with a redirect back to the page.
    form = httpx.post(
        f"{base}/_sandbox/sessions/shop/link", data={"phone": "+15550003333", "push_name": "<b>"}
    )
    assert form.status_code == 303
    assert waha_sandbox.session("shop").me == {"id": "15550003333@c.us", "pushName": "<b>"}
    page = httpx.get(f"{base}/").text
    assert "Linked to 15550003333@c.us" in page and "Send to this number" in page
    assert httpx.post(f"{base}/_sandbox/sessions/shop/link", json={}).status_code == 409
    sent = httpx.post(f"{base}/_sandbox/inbound", json={"session": "shop", "from": CUSTOMER, "text": "hi"})
    assert sent.status_code == 200 and sent.json()["id"].startswith("false_")
    assert (
        httpx.post(f"{base}/_sandbox/inbound", json={"session": "nope", "from": CUSTOMER}).status_code == 404
    )
    assert (
        httpx.post(f"{base}/_sandbox/from-phone", json={"session": "shop", "to": CUSTOMER, "text": "x"})
        .json()["id"]
        .startswith("true_")
    )
    assert httpx.post(f"{base}/_sandbox/fail", json={"kind": "http", "status": 400}).status_code == 200
    assert httpx.post(f"{base}/_sandbox/fail", json={"kind": "weird"}).status_code == 400
    refused = api(
        waha_sandbox, "POST", "/api/sendText", json={"session": "shop", "chatId": CUSTOMER_CHAT, "text": "x"}
    )
    assert refused.status_code == 400
    assert httpx.post(f"{base}/_sandbox/sessions/shop/disconnect", json={}).status_code == 200
    assert httpx.get(f"{base}/_sandbox/sent").json()["sessions"][0]["status"] == "FAILED"
    assert httpx.post(f"{base}/_sandbox/explode", json={}).status_code == 404
    assert httpx.post(f"{base}/_sandbox/reset", json={}).status_code == 200
    assert waha_sandbox.sessions() == []


def test_the_command_line_follows_make_runs_environment(tmp_path: Any) -> None:
    options = build_parser({"WAHA_SANDBOX_PORT": "9310", "WAHA_API_KEY": "my-key"}).parse_args([])
    assert (options.port, options.api_key) == (9310, "my-key")
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    assert build_parser({"WAHA_API_KEY_FILE": str(key_file)}).parse_args([]).api_key == "from-a-file"
    assert build_parser({}).parse_args([]).api_key == DEFAULT_API_KEY
    line = next(row for row in (ROOT / "Procfile").read_text().splitlines() if row.startswith("waha:"))
    assert "${WAHA_SANDBOX_PORT:-8003}" in line
    assert "--api-key" not in line  # never on the command line (`ps`): from the environment


def test_development_talks_to_the_sandbox_make_run_starts() -> None:
    code = "import json, config.settings as s; print(json.dumps([s.WAHA_URL, s.WAHA_API_KEY]))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAHA_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_ENV": "development", "WAHA_SANDBOX_PORT": "9311"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    url, key = json.loads(result.stdout.strip().splitlines()[-1])
    assert (url, key) == ("http://127.0.0.1:9311", DEFAULT_API_KEY)
    assert build_parser({"WAHA_SANDBOX_PORT": "9311"}).parse_args([]).port == 9311


# -- simulate_inbound ------------------------------------------------------------------------------------
def test_simulate_inbound_makes_the_sandbox_send_a_signed_webhook(
    tenant_a: Any, waha_sandbox: Sandbox, waha_number_a: Any, public_client: Any
) -> None:
    call_command(
        "simulate_inbound", tenant="alpha", number=WAHA_PHONE_A, sender=CUSTOMER, text="Hello from sim"
    )
    webhooks = waha_sandbox.take_webhooks()
    assert [w.event for w in webhooks] == ["message", "message.any"]
    assert webhooks[0].path == f"/webhooks/waha/{waha_number_a.webhook_id}/"
    assert verified(webhooks[0], key=waha_number_a.webhook_key)
    assert webhooks[0].payload["body"] == "Hello from sim" and webhooks[0].payload["from"] == CUSTOMER_CHAT


def test_simulate_inbound_refuses_what_it_cannot_do(
    tenant_a: Any, tenant_b: Any, waha_sandbox: Sandbox, waha_number_a: Any
) -> None:
    with pytest.raises(CommandError, match="no WhatsApp number"):  # another tenant's number
        call_command("simulate_inbound", tenant="beta", number=WAHA_PHONE_A, sender=CUSTOMER, text="x")
    with pytest.raises(CommandError, match="--from"):
        call_command("simulate_inbound", tenant="alpha", number=WAHA_PHONE_A, user_id="US.1", text="x")
    waha_sandbox.disconnect(waha_number_a.session.session)
    with pytest.raises(CommandError, match="not linked"):
        call_command("simulate_inbound", tenant="alpha", number=WAHA_PHONE_A, sender=CUSTOMER, text="x")
    assert waha_sandbox.take_webhooks()[-1].payload["status"] == "FAILED"


def test_simulate_inbound_signs_and_posts_itself_when_the_server_is_no_sandbox(
    tenant_a: Any, waha_sandbox: Sandbox, receiver: Any
) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="real", phone="+15550004444")
    number.session.server_url = receiver.url.rsplit("/hook/", 1)[0]  # answers 200 to anything: not a sandbox
    with schema_context(tenant_a.schema_name):
        number.session.save(update_fields=["server_url"])
    receiver.answers = [404]  # POST /_sandbox/inbound: unknown there
    base = receiver.url.rsplit("/hook/", 1)[0]
    call_command(
        "simulate_inbound",
        tenant="alpha",
        number="+1 555 000 4444",
        sender=CUSTOMER,
        text="direct",
        url=f"{base}/webhooks/whatsapp/",
    )
    headers, body = receiver.received[-1]
    headers = {k.lower(): v for k, v in headers.items()}
    assert (
        headers["x-webhook-hmac"] == hmac.new(number.webhook_key.encode(), body, hashlib.sha512).hexdigest()
    )
    event = json.loads(body)
    assert event["event"] == "message" and event["payload"]["body"] == "direct"
    assert event["payload"]["from"] == CUSTOMER_CHAT and event["session"] == "real"
    assert receiver.paths == ["/_sandbox/inbound", f"/webhooks/waha/{number.webhook_id}/"]
    assert waha_sandbox.take_webhooks() == []
