"""waha.client against a small fake WAHA server: the contract's calls, the API key, typed results and
the retry class of every failure (an uncertain send is never confused with one that can be retried)."""

from __future__ import annotations

import pytest

from waha.client import SessionInfo, WahaClient, WahaError, message_id_of
from waha.tests.fake_waha import API_KEY
from whatsapp.client import RetryClass


@pytest.fixture
def client(fake_waha):
    return WahaClient(fake_waha.url, API_KEY, timeout=2.0)


def test_every_request_carries_the_api_key_and_a_wrong_key_is_an_auth_error(client, fake_waha):
    client.send_seen("default", "16505550199@c.us", ["false_16505550199@c.us_AAA"])
    assert fake_waha.requests("/api/sendSeen")[0]["headers"]["X-Api-Key"] == API_KEY
    with pytest.raises(WahaError) as caught:
        WahaClient(fake_waha.url, "wrong").get_session("default")
    assert caught.value.status == 401 and caught.value.retry_class == RetryClass.AUTH


def test_sessions_are_created_read_and_driven_with_the_contract_paths(client, fake_waha):
    created = client.create_session("default", "https://crm.example/webhooks/waha/abc/", "hmac-key")
    assert created == SessionInfo(name="default", status="SCAN_QR_CODE")
    body = fake_waha.requests("/api/sessions")[0]["json"]
    webhook = body["config"]["webhooks"][0]
    assert body["name"] == "default" and body["start"] is True
    assert webhook["url"] == "https://crm.example/webhooks/waha/abc/" and webhook["hmac"] == {
        "key": "hmac-key"
    }
    assert "message.any" in webhook["events"] and "session.status" in webhook["events"]
    with pytest.raises(WahaError) as caught:
        client.create_session("default", "https://crm.example/x/", "k")
    assert caught.value.status == 422 and caught.value.retry_class == RetryClass.PERMANENT
    assert "already exists" in caught.value.message

    client.update_session_config("default", "https://crm.example/webhooks/waha/new/", "k2")
    assert fake_waha.requests("/api/sessions/default")[-1]["method"] == "PUT"
    assert client.get_qr("default") == "2@fake-qr-value"
    assert fake_waha.requests("/api/default/auth/qr")[0]["url"].endswith("?format=raw")
    assert client.start_session("default").status == "STARTING"
    assert client.stop_session("default").status == "STOPPED"
    client.restart_session("default")
    client.logout_session("default")
    client.delete_session("default")
    with pytest.raises(WahaError) as caught:
        client.get_session("default")
    assert caught.value.status == 404 and caught.value.retry_class == RetryClass.PERMANENT


def test_the_linked_account_is_read_from_the_session():
    info = SessionInfo.from_json(
        {"name": "default", "status": "working", "me": {"id": "15550001111@c.us", "pushName": "Shop"}}
    )
    assert info == SessionInfo("default", "WORKING", "15550001111@c.us", "Shop")
    assert SessionInfo.from_json("not json").status == ""


def test_sends_return_the_message_id_in_any_of_wahas_shapes(client, fake_waha):
    assert client.send_text("default", "16505550199@c.us", "Hi", reply_to="false_x_1").startswith("true_")
    assert fake_waha.requests("/api/sendText")[0]["json"] == {
        "session": "default",
        "chatId": "16505550199@c.us",
        "text": "Hi",
        "reply_to": "false_x_1",
    }
    assert message_id_of({"id": "abc"}) == "abc"
    assert message_id_of({"id": {"_serialized": "true_1@c.us_X", "id": "X"}}) == "true_1@c.us_X"
    assert message_id_of({"key": {"id": "K1"}}) == "K1"
    assert message_id_of({"id": 5}) == "" and message_id_of(None) == ""


def test_every_kind_of_send_uses_its_endpoint(client, fake_waha):
    file = {"mimetype": "image/png", "filename": "a.png", "data": "aGk="}
    client.send_image("default", "1@c.us", file, caption="look")
    client.send_file("default", "1@c.us", file)
    client.send_voice("default", "1@c.us", file)
    client.send_location("default", "1@c.us", 52.5, 13.4, title="Shop")
    client.react("default", "false_1@c.us_A", "👍")
    client.start_typing("default", "1@c.us")
    client.stop_typing("default", "1@c.us")
    paths = [(r["method"], r["path"]) for r in fake_waha.requests()]
    assert paths == [
        ("POST", "/api/sendImage"),
        ("POST", "/api/sendFile"),
        ("POST", "/api/sendVoice"),
        ("POST", "/api/sendLocation"),
        ("PUT", "/api/reaction"),
        ("POST", "/api/startTyping"),
        ("POST", "/api/stopTyping"),
    ]
    assert fake_waha.requests("/api/sendImage")[0]["json"]["caption"] == "look"
    assert fake_waha.requests("/api/sendVoice")[0]["json"]["convert"] is True
    assert fake_waha.requests("/api/sendLocation")[0]["json"]["title"] == "Shop"


@pytest.mark.parametrize(
    ("status", "retry_class"),
    [
        (500, RetryClass.RETRY),
        (503, RetryClass.RETRY),
        (429, RetryClass.RETRY),
        (400, RetryClass.PERMANENT),
        (422, RetryClass.PERMANENT),
        (403, RetryClass.AUTH),
    ],
)
def test_errors_are_classified_by_status(client, fake_waha, status, retry_class):
    fake_waha.script(
        "/api/sendText", status=status, body={"statusCode": status, "exception": {"message": "nope"}}
    )
    with pytest.raises(WahaError) as caught:
        client.send_text("default", "1@c.us", "x")
    assert caught.value.status == status and caught.value.retry_class == retry_class
    assert caught.value.message == "nope"


def test_a_send_whose_connection_broke_after_the_request_is_uncertain_but_a_read_is_retried(
    client, fake_waha
):
    fake_waha.script("/api/sendText", drop=True)
    with pytest.raises(WahaError) as caught:
        client.send_text("default", "1@c.us", "x")
    assert caught.value.retry_class == RetryClass.UNCERTAIN
    fake_waha.script("/api/sessions/default", drop=True)
    with pytest.raises(WahaError) as caught:
        client.get_session("default")
    assert caught.value.retry_class == RetryClass.RETRY


def test_a_send_answered_too_late_is_uncertain(fake_waha):
    fake_waha.script("/api/sendText", delay=1.5, status=201, body={"id": "late"})
    with pytest.raises(WahaError) as caught:
        WahaClient(fake_waha.url, API_KEY, timeout=0.3).send_text("default", "1@c.us", "x")
    assert caught.value.retry_class == RetryClass.UNCERTAIN


def test_a_send_accepted_without_an_id_is_uncertain(client, fake_waha):
    fake_waha.script("/api/sendText", status=201, body={"fromMe": True})
    with pytest.raises(WahaError) as caught:
        client.send_text("default", "1@c.us", "x")
    assert caught.value.retry_class == RetryClass.UNCERTAIN


def test_an_unreachable_server_is_retried():
    with pytest.raises(WahaError) as caught:
        WahaClient("http://127.0.0.1:9", API_KEY, timeout=1.0).send_text("default", "1@c.us", "x")
    assert caught.value.retry_class == RetryClass.RETRY  # nothing was sent: safe to try again


@pytest.mark.parametrize(
    "url",
    ["ftp://waha.example", "file:///etc/passwd", "http://user:pw@waha.example", "javascript:alert(1)", ""],
)
def test_only_plain_http_server_urls_are_accepted(url):
    with pytest.raises(WahaError) as caught:
        WahaClient(url, API_KEY)
    assert caught.value.retry_class == RetryClass.PERMANENT


@pytest.mark.parametrize("name", ["../admin", "a/b", "x?y=1", "", "a" * 65, "dé"])
def test_hostile_session_names_are_refused_before_any_request(client, fake_waha, name):
    with pytest.raises(WahaError) as caught:
        client.get_session(name)
    assert caught.value.retry_class == RetryClass.PERMANENT
    with pytest.raises(WahaError):
        client.send_text(name, "1@c.us", "x")
    assert fake_waha.requests() == []


def test_a_hostile_error_message_is_flattened_and_bounded(client, fake_waha):
    fake_waha.script("/api/sendText", status=400, body={"message": "<script>\n" + "x" * 1000})
    with pytest.raises(WahaError) as caught:
        client.send_text("default", "1@c.us", "x")
    assert "\n" not in caught.value.message and len(caught.value.message) <= 300


def test_files_are_downloaded_from_the_servers_own_origin_only(client, fake_waha):
    url = fake_waha.add_file("/api/files/default/photo.jpg", b"\xff\xd8jpeg", "image/jpeg")
    assert client.download(url) == (b"\xff\xd8jpeg", "image/jpeg")
    assert fake_waha.requests("/api/files/default/photo.jpg")[0]["headers"]["X-Api-Key"] == API_KEY
    fake_waha.reset()
    other_host = url.replace("127.0.0.1", "localhost")
    for hostile in (other_host, "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        with pytest.raises(WahaError) as caught:
            client.download(hostile)
        assert caught.value.retry_class == RetryClass.PERMANENT
    assert fake_waha.requests() == []  # the key never went anywhere


def test_a_file_over_the_limit_is_refused_for_good(client, fake_waha):
    url = fake_waha.add_file("/api/files/default/big.bin", b"x" * 2048, "application/octet-stream")
    with pytest.raises(WahaError) as caught:
        client.download(url, max_bytes=1024)
    assert caught.value.retry_class == RetryClass.PERMANENT


def test_a_missing_file_is_permanent(client, fake_waha):
    with pytest.raises(WahaError) as caught:
        client.download(f"{fake_waha.url}/api/files/default/gone.jpg")
    assert caught.value.status == 404 and caught.value.retry_class == RetryClass.PERMANENT
