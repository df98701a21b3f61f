"""Web pages are fetched through core/fetch.py: private addresses refused unless the setting allows them,
time and size bounded, each failure a reason on the source. No outside network: names resolve through a
patched resolver and "public" connections are carried to a local server."""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

import pytest

from core import fetch as fetching
from core.testing import RecordingServer, Reply
from knowledge import services
from knowledge.errors import KnowledgeError
from knowledge.models import Chunk, Source

pytestmark = pytest.mark.usefixtures("inline_jobs")

PUBLIC = "93.184.216.34"
PRIVATE = "10.1.2.3"
PAGE = (
    b"<html><head><title>Our prices</title></head>"
    b"<body><h1>Prices</h1><p>A haircut costs 20 euros.</p></body></html>"
)


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch, settings: Any):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    names = {"shop.example.test": PUBLIC, "intranet.example.test": PRIVATE}
    real_connect = socket.create_connection
    with RecordingServer() as server:
        server.routes["/prices"] = Reply(200, PAGE, headers={"Content-Type": "text/html; charset=utf-8"})

        def resolve(host: str, port: int) -> list[Any]:
            if host not in names:
                raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")
            return [ipaddress.ip_address(names[host])]

        def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return real_connect(("127.0.0.1", server.port), *args, **kwargs)

        monkeypatch.setattr(fetching, "resolve", resolve)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        _fresh_pool()
        yield server
        _fresh_pool()


def _fresh_pool() -> None:
    """Pooled keep-alive connections must not carry a request to another test's server."""
    fetching.close_all()


def test_a_page_is_fetched_chunked_and_titled(in_a, web):
    source = services.create_url_source(url="http://shop.example.test/prices")
    source.refresh_from_db()
    assert source.status == "ready", source.error
    assert source.title == "Our prices"
    chunk = Chunk.objects.get(source=source)
    assert (chunk.heading, chunk.text) == ("Prices", "A haircut costs 20 euros.")


def test_refetching_picks_up_a_changed_page(in_a, web):
    source = services.create_url_source(url="http://shop.example.test/prices")
    web.routes["/prices"] = Reply(
        200, b"<h1>Prices</h1><p>Now 25 euros.</p>", headers={"Content-Type": "text/html"}
    )
    services.reindex_source(source=source)
    assert Chunk.objects.get(source=source).text == "Now 25 euros."


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://intranet.example.test/prices",
        "http://[::1]/",
    ],
)
def test_a_private_address_is_refused_and_nothing_is_stored(in_a, web, url):
    with pytest.raises(KnowledgeError) as error:
        services.create_url_source(url=url)
    assert error.value.code == "address_not_allowed"
    assert not Source.objects.exists()
    assert not web.requests


def test_a_name_that_turns_private_after_the_check_fails_the_source(in_a, web, monkeypatch):
    source = Source.objects.create(kind="url", title="x", url="http://intranet.example.test/prices")
    services.index_source(source_id=source.pk)
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "address_not_allowed")
    assert not web.requests


def test_private_networks_are_reachable_only_when_the_setting_allows(in_a, web, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    source = services.create_url_source(url="http://intranet.example.test/prices")
    source.refresh_from_db()
    assert source.status == "ready", source.error


def test_a_page_that_does_not_answer_in_time_fails_with_timeout(in_a, web, monkeypatch):
    monkeypatch.setattr(services, "URL_TIMEOUT_SECONDS", 0.3)

    def slow(request: Any) -> Reply:
        time.sleep(1.5)
        return Reply(200, PAGE)

    web.routes["/slow"] = slow
    source = services.create_url_source(url="http://shop.example.test/slow")
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "timeout")


def test_a_page_over_the_size_limit_fails(in_a, web, settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 100
    source = services.create_url_source(url="http://shop.example.test/prices")
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "too_large")


def test_an_error_page_and_an_unknown_host_fail_clearly(in_a, web):
    source = services.create_url_source(url="http://shop.example.test/missing")
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "http_error")
    with pytest.raises(KnowledgeError) as error:
        services.create_url_source(url="http://nowhere.example.test/")
    assert error.value.code == "host_not_found"
    for bad in ("ftp://shop.example.test/", "http://user:pw@shop.example.test/", "not a url"):
        with pytest.raises(KnowledgeError):
            services.create_url_source(url=bad)
