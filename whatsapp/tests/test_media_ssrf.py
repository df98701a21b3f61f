"""Media downloads from the attacker's side: a forged webhook or a Graph API answer must never make the worker
fetch another URL, and the number's access token must never reach another host."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from django_tenants.utils import schema_context

from conversations.models import MediaFile
from core import fetch as fetching
from core.testing import RecordingServer, Reply
from whatsapp.client import GraphClient, GraphError, RetryClass
from whatsapp.testing import deliver, fixture

DOCUMENT_ID = "1003383421387259"  # the media id in fixtures/document.json
PDF = b"%PDF-1.4 quarterly report" * 40


@pytest.fixture
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def attacker() -> Any:
    with RecordingServer() as server:
        server.routes["/steal"] = Reply(200, PDF)
        yield server


@pytest.fixture
def fake_graph(settings: Any, channel_a: Any) -> Any:
    """A Graph API that answers the media lookup with whatever URL the test puts there."""
    with RecordingServer() as server:
        settings.WHATSAPP_GRAPH_URL = server.url("/v21.0")
        yield server


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name the fetcher tried to resolve (none may be: nothing outside is ever contacted)."""
    names: list[str] = []

    def resolve(host: str, port: int) -> list[Any]:
        names.append(host)
        raise OSError("no outside network in tests")

    monkeypatch.setattr(fetching, "resolve", resolve)
    return names


def _document_with_id(media_id: str) -> dict[str, Any]:
    body = fixture("document")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["document"]["id"] = media_id
    return body


def _media_lookup_answer(url: str) -> Reply:
    body = {
        "url": url,
        "mime_type": "application/pdf",
        "sha256": "",
        "file_size": len(PDF),
        "id": DOCUMENT_ID,
    }
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _the_media(tenant: Any) -> MediaFile:
    with schema_context(tenant.schema_name):
        return MediaFile.objects.get()


def test_a_webhook_media_id_that_is_a_url_is_never_fetched_and_the_media_fails_with_a_reason(
    public_client, channel_a, tenant_a, sandbox, media_root, attacker
):
    deliver(public_client, _document_with_id(attacker.url("/steal")))
    assert attacker.requests == []  # never contacted, so no Authorization header ever reached it
    media = _the_media(tenant_a)
    assert media.status == "failed"
    assert "not a WhatsApp media id" in media.error


@pytest.mark.parametrize(
    "path",
    [
        "{attacker}/steal",
        "//127.0.0.1:{port}/steal",
        "../../steal",
        "1003383421387259/../../steal",
        "1003383421387259?fields=x",
        "1003383421387259#x",
        "%2e%2e/steal",
        "1003383421387259@127.0.0.1:{port}",
    ],
)
def test_the_graph_client_joins_only_ids_and_edge_names_under_the_graph_api_url(path, attacker, sandbox):
    graph = GraphClient(access_token="tenant-token")
    with pytest.raises(GraphError) as error:
        graph._request("GET", path.format(attacker=attacker.base, port=attacker.port))
    assert error.value.retry_class == RetryClass.PERMANENT
    with pytest.raises(GraphError):
        graph.get_media(media_id=path.format(attacker=attacker.base, port=attacker.port))
    assert attacker.requests == []


def test_a_media_url_on_another_origin_of_the_same_host_is_not_fetched_and_gets_no_token(
    public_client, tenant_a, fake_graph, attacker, media_root
):
    fake_graph.routes[f"/v21.0/{DOCUMENT_ID}"] = _media_lookup_answer(attacker.url("/steal"))
    deliver(public_client, fixture("document"))
    assert [r.path for r in fake_graph.requests] == [f"/v21.0/{DOCUMENT_ID}"]
    assert attacker.requests == []
    media = _the_media(tenant_a)
    assert media.status == "failed"
    assert "not an allowed host" in media.error


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/steal",
        "https://lookaside.fbsbx.com.evil.example/steal",
        "http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",  # a media host, but not https
        "https://lookaside.fbsbx.com:8443/whatsapp_business/attachments/?mid=1",
        "https://user:pw@lookaside.fbsbx.com/x",
        "file:///etc/passwd",
    ],
)
def test_a_media_url_that_is_not_an_https_url_of_meta_s_media_hosts_is_not_fetched(
    url, public_client, tenant_a, fake_graph, media_root, lookups
):
    fake_graph.routes[f"/v21.0/{DOCUMENT_ID}"] = _media_lookup_answer(url)
    deliver(public_client, fixture("document"))
    assert lookups == []  # refused before anything was resolved, let alone connected to
    assert _the_media(tenant_a).status == "failed"


def test_meta_s_media_hosts_are_fetched_with_the_token(tenant_a, channel_a, sandbox, monkeypatch):
    seen: list[tuple[str, dict[str, str]]] = []

    def exchange(method, url, headers, body, max_bytes, timeout, deadline):
        seen.append((str(url), dict(headers or {})))
        return fetching.Fetched(url=str(url), status_code=200, headers=httpx.Headers(), content=PDF)

    monkeypatch.setattr(fetching, "_exchange", exchange)
    graph = GraphClient(access_token="tenant-token")
    for url in (
        "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3",
        "https://mmg.whatsapp.net/v/t62/x.enc",
        "https://scontent.xx.fbcdn.net/v/x.jpg",
    ):
        assert graph.download(url=url, max_bytes=len(PDF)) == PDF
    assert all(headers["Authorization"] == "Bearer tenant-token" for _, headers in seen)


def test_a_redirect_from_an_allowed_media_url_to_another_host_is_not_followed(
    public_client, tenant_a, fake_graph, attacker, media_root
):
    fake_graph.routes[f"/v21.0/{DOCUMENT_ID}"] = _media_lookup_answer(fake_graph.url("/files/doc"))
    fake_graph.routes["/files/doc"] = Reply(302, b"", {"Location": attacker.url("/steal")})
    deliver(public_client, fixture("document"))
    assert fake_graph.requests[-1].path == "/files/doc"
    assert attacker.requests == []
    media = _the_media(tenant_a)
    assert media.status == "failed"
    assert "redirect to another host" in media.error


def test_a_redirect_within_the_same_origin_is_followed(public_client, tenant_a, fake_graph, media_root):
    fake_graph.routes[f"/v21.0/{DOCUMENT_ID}"] = _media_lookup_answer(fake_graph.url("/files/doc"))
    fake_graph.routes["/files/doc"] = Reply(302, b"", {"Location": "/files/doc-2"})
    fake_graph.routes["/files/doc-2"] = Reply(200, PDF, {"Content-Type": "application/pdf"})
    body = fixture("document")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["document"]["sha256"] = hashlib.sha256(
        PDF
    ).hexdigest()
    deliver(public_client, body)
    assert [r.path for r in fake_graph.requests] == [f"/v21.0/{DOCUMENT_ID}", "/files/doc", "/files/doc-2"]
    media = _the_media(tenant_a)
    assert media.status == "ready"
    assert media.size == len(PDF)
