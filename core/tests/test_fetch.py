"""The SSRF-safe fetcher. There is no outside network here: names resolve through a patched resolver, and
connections to "public" addresses are recorded and carried to a local server instead."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import itertools
import json
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core import fetch as fetching
from core.fetch import FetchError, FetchRefused, check_url, fetch, host_matches
from core.testing import RecordingServer, Reply

PUBLIC = "93.184.216.34"


class Network:
    """What the fetcher resolved and which addresses it opened sockets to."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        self.connects: list[tuple[str, int]] = []
        self.carry_to: tuple[str, int] | None = None  # a local server standing in for every address


@pytest.fixture(autouse=True)
def _strict_policy(settings: Any) -> None:
    # The test settings make the sandbox's host (127.0.0.1) operator-configured: these tests start from none.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    net = Network()
    real_connect = socket.create_connection

    def resolve(host: str, port: int) -> list[Any]:
        net.lookups.append(host)
        if host not in net.names:
            raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")
        return [ipaddress.ip_address(address) for address in net.names[host]]

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        net.connects.append((address[0], address[1]))
        if net.carry_to is not None:
            return real_connect(net.carry_to, *args, **kwargs)
        if ipaddress.ip_address(address[0]).is_loopback:
            return real_connect(address, *args, **kwargs)
        raise ConnectionRefusedError("no outside network in tests")

    monkeypatch.setattr(fetching, "resolve", resolve)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield net


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as running:
        running.routes["/"] = Reply(200, b"hello")
        yield running


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3/",
        "http://localhost/",
        "http://app.localhost/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://017700000001/",
    ],
)
def test_it_refuses_private_loopback_link_local_and_reserved_addresses_in_any_spelling(
    url: str, network: Network
) -> None:
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", url)
    assert refused.value.code == "address_not_allowed"
    assert network.connects == []


def test_a_dotted_octal_address_is_refused_as_an_invalid_url(network: Network) -> None:
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", "http://0177.0.0.1/")
    assert refused.value.code in {"invalid_url", "address_not_allowed"}
    assert network.connects == []


def test_a_name_that_resolves_to_a_private_address_is_refused(network: Network) -> None:
    network.names["intranet.example.com"] = ["10.1.2.3"]
    # One private address among public ones is enough: every resolved address is checked.
    network.names["mixed.example.com"] = [PUBLIC, "192.168.0.10"]
    for url in ("http://intranet.example.com/", "https://mixed.example.com/"):
        with pytest.raises(FetchRefused) as refused:
            fetch("GET", url)
        assert refused.value.code == "address_not_allowed"
    assert network.connects == []


def test_a_public_address_is_fetched_by_connecting_to_the_address_that_was_checked(
    network: Network, server: RecordingServer
) -> None:
    network.names["www.example.com"] = [PUBLIC]
    network.carry_to = ("127.0.0.1", server.port)
    response = fetch("GET", "http://www.example.com/")
    assert (response.status_code, response.content) == (200, b"hello")
    assert network.connects == [(PUBLIC, 80)]
    assert server.requests[0].headers["host"] == "www.example.com"


def test_dns_rebinding_between_the_check_and_the_connect_cannot_reach_a_private_address(
    network: Network, server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = itertools.chain([[PUBLIC]], itertools.repeat(["127.0.0.1"]))

    def rebinding(host: str, port: int) -> list[Any]:
        network.lookups.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    monkeypatch.setattr(fetching, "resolve", rebinding)
    network.carry_to = ("127.0.0.1", server.port)
    fetch("GET", "http://rebind.example.com/")
    # One lookup, and the socket went to the address that lookup gave: no second answer is ever used.
    assert network.lookups == ["rebind.example.com"]
    assert network.connects == [(PUBLIC, 80)]


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@www.example.com/", "http://user@www.example.com/", "https://:x@www.example.com/"],
)
def test_urls_with_credentials_are_refused(url: str, network: Network) -> None:
    network.names["www.example.com"] = [PUBLIC]
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", url)
    assert refused.value.code == "credentials_in_url"
    assert network.lookups == [] and network.connects == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_stats", "ftp://www.example.com/", "dict://x:11211/"]
)
def test_only_http_and_https_urls_are_fetched(url: str, network: Network) -> None:
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", url)
    assert refused.value.code == "scheme_not_allowed"
    assert network.connects == []


def test_ports_other_than_80_and_443_are_refused_unless_the_host_is_operator_configured(
    network: Network, server: RecordingServer, settings: Any
) -> None:
    network.names["www.example.com"] = [PUBLIC]
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", "http://www.example.com:8080/")
    assert refused.value.code == "port_not_allowed"
    with pytest.raises(FetchRefused):
        fetch("GET", server.url("/"))  # 127.0.0.1 on its own port: not configured by the operator yet

    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]  # e.g. a sandbox: private address, any port
    assert fetch("GET", server.url("/")).content == b"hello"
    assert len(server.requests) == 1


def test_allowing_private_networks_lifts_only_the_address_refusal(
    network: Network, server: RecordingServer, settings: Any
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    network.names["intranet.example.com"] = ["10.0.0.7"]
    network.carry_to = ("127.0.0.1", server.port)
    assert fetch("GET", "http://intranet.example.com/").content == b"hello"
    assert fetch("GET", "http://localhost/").content == b"hello"
    assert network.connects == [("10.0.0.7", 80), ("127.0.0.1", 80)]
    with pytest.raises(FetchRefused) as refused:
        fetch("GET", "http://intranet.example.com:8080/")
    assert refused.value.code == "port_not_allowed"


def test_the_size_limit_is_enforced_while_streaming(server: RecordingServer, settings: Any) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    sent = itertools.count()

    def endless() -> Iterator[bytes]:
        for _ in range(2000):
            next(sent)
            yield b"x" * 65536

    server.routes["/stream"] = Reply(200, chunks=endless())
    with pytest.raises(FetchError) as error:
        fetch("GET", server.url("/stream"), max_bytes=200_000)
    assert error.value.code == "too_large"
    # The reader stopped soon after the limit: the server never got to send its 128 MB.
    assert next(sent) < 2000

    server.routes["/announced"] = Reply(200, b"y" * 5000)
    with pytest.raises(FetchError) as error:
        fetch("GET", server.url("/announced"), max_bytes=1000)
    assert error.value.code == "too_large"
    assert fetch("GET", server.url("/announced"), max_bytes=5000).content == b"y" * 5000


def test_a_caller_s_host_allow_list_limits_where_a_request_may_go(settings: Any) -> None:
    media = ["lookaside.fbsbx.com", "*.fbcdn.net", "http://127.0.0.1:8001"]
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    for allowed in (
        "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
        "https://scontent.xx.fbcdn.net/v/x.jpg",
        "http://127.0.0.1:8001/_files/1",
    ):
        check_url(allowed, allowed_hosts=media, https_only=True)
    for refused in (
        "https://lookaside.fbsbx.com.evil.example/x",
        "https://evilfbcdn.net/x",
        "https://fbcdn.net/x",
        "http://127.0.0.1:8002/steal",
    ):
        with pytest.raises(FetchRefused) as error:
            check_url(refused, allowed_hosts=media, https_only=True)
        assert error.value.code == "host_not_allowed"
    with pytest.raises(FetchRefused) as error:
        check_url("http://lookaside.fbsbx.com/x", allowed_hosts=media, https_only=True)
    assert error.value.code == "scheme_not_allowed"
    assert host_matches("Scontent.XX.fbcdn.net.", ["*.fbcdn.net"])


def test_redirects_are_checked_at_every_hop_and_credentials_never_follow_one_to_another_host(
    server: RecordingServer, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    token = {"Authorization": "Bearer secret"}
    with RecordingServer() as other:
        other.routes["/landing"] = Reply(200, b"elsewhere")
        server.routes["/moved"] = Reply(302, b"", {"Location": "/"})
        server.routes["/away"] = Reply(302, b"", {"Location": other.url("/landing")})
        server.routes["/metadata"] = Reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})

        assert fetch("GET", server.url("/moved"), headers=token, max_redirects=3).content == b"hello"
        assert fetch("GET", server.url("/moved")).status_code == 302  # not followed unless asked

        with pytest.raises(FetchRefused) as refused:
            fetch("GET", server.url("/away"), headers=token, max_redirects=3)
        assert refused.value.code == "redirect_not_allowed"
        assert other.requests == []

        with pytest.raises(FetchRefused) as refused:
            fetch("GET", server.url("/metadata"), max_redirects=3, cross_origin_redirects=True)
        assert refused.value.code == "address_not_allowed"

        response = fetch(
            "GET", server.url("/away"), headers=token, max_redirects=3, cross_origin_redirects=True
        )
        assert response.content == b"elsewhere"
        assert "authorization" not in other.requests[0].headers
    assert server.requests[1].headers["authorization"] == "Bearer secret"  # same origin: still sent


def test_a_url_can_be_checked_with_its_addresses_before_it_is_stored(network: Network) -> None:
    network.names["intranet.example.com"] = ["10.1.2.3"]
    network.names["www.example.com"] = [PUBLIC]
    with pytest.raises(FetchRefused) as refused:
        check_url("https://intranet.example.com/doc", resolve_host=True)
    assert refused.value.code == "address_not_allowed"
    with pytest.raises(FetchRefused) as refused:
        check_url("https://nowhere.example.com/doc", resolve_host=True)
    assert refused.value.code == "host_not_found"
    assert check_url("https://www.example.com/doc", resolve_host=True).host == "www.example.com"
    assert network.connects == []


def test_no_cookie_a_server_sets_is_ever_sent_back(server: RecordingServer, settings: Any) -> None:
    """The client is shared by every request of a thread, whatever tenant it serves: a cookie one tenant's
    endpoint sets must not ride along on another tenant's request to the same host."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    server.routes["/login"] = Reply(200, b"in", headers={"Set-Cookie": "session=tenant-a; Path=/"})
    fetch("GET", server.url("/login"))
    fetch("GET", server.url("/"))
    assert [request.headers.get("cookie") for request in server.requests] == [None, None]
    assert not fetching.client().cookies


# -- JSON POSTs to operator-configured hosts: the thread's kept-alive connection ----------------------------


class RawServer:
    """A TCP server on 127.0.0.1 answering each request by `answer(request bytes) -> bytes | None` (None:
    close without answering); after each answer it closes the connection when `close_after`."""

    def __init__(self, answer: Any, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        with sock:
            buffer = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
                head, separator, rest = buffer.partition(b"\r\n\r\n")
                if not separator:
                    continue
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                if len(rest) < length:
                    continue
                buffer = rest[length:]
                reply = self.answer(head + b"\r\n\r\n" + rest[:length])
                if reply is None:
                    return
                sock.sendall(reply)
                if self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


def _json_reply(body: bytes = b'{"messages":[{"id":"wamid.1"}]}') -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.fixture
def raw(settings: Any) -> Iterator[list[RawServer]]:
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    fetching.close_all()
    servers: list[RawServer] = []
    yield servers
    for running in servers:
        running.close()
    fetching.close_all()


def test_json_posts_to_an_operator_host_share_one_kept_alive_connection(raw: list[RawServer]) -> None:
    requests: list[bytes] = []
    server = RawServer(lambda request: requests.append(request) or _json_reply())
    raw.append(server)
    for n in range(3):
        response = fetch(
            "POST",
            f"http://127.0.0.1:{server.port}/v1/123/messages?x=1",
            json={"n": n, "text": "héllo"},
            headers={"Authorization": "Bearer t"},
        )
        assert (response.status_code, response.json()) == (200, {"messages": [{"id": "wamid.1"}]})
        assert response.headers["content-type"] == "application/json"
    assert server.accepted == 1
    head, _, body = requests[2].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/123/messages?x=1 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t" in head and b"\r\nContent-Type: application/json" in head
    assert json.loads(body) == {"n": 2, "text": "héllo"}


def test_a_kept_alive_connection_the_server_closed_is_replaced_before_a_request_is_written(
    raw: list[RawServer],
) -> None:
    server = RawServer(lambda request: _json_reply(), close_after=True)  # closes after every answer
    raw.append(server)
    for _ in range(3):
        time.sleep(0.05)  # the server's close has arrived
        assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert server.accepted == 3


def test_a_post_that_cannot_connect_was_not_sent_and_one_cut_off_after_writing_may_have_been(
    raw: list[RawServer],
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(FetchError) as refused:
        fetch("POST", f"http://127.0.0.1:{closed_port}/", json={})
    assert (refused.value.code, refused.value.sent) == ("connect_failed", False)

    server = RawServer(lambda request: None)  # reads the request, closes without an answer
    raw.append(server)
    with pytest.raises(FetchError) as cut:
        fetch("POST", f"http://127.0.0.1:{server.port}/", json={})
    assert (cut.value.code, cut.value.sent) == ("network", True)


def test_a_post_s_answer_is_bounded_and_the_connection_is_not_reused_after(raw: list[RawServer]) -> None:
    server = RawServer(lambda request: _json_reply(b'{"big":"' + b"x" * 5000 + b'"}'))
    raw.append(server)
    with pytest.raises(FetchError) as error:
        fetch("POST", f"http://127.0.0.1:{server.port}/", json={}, max_bytes=1000)
    assert (error.value.code, error.value.sent) == ("too_large", True)
    assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert server.accepted == 2


def test_a_json_post_to_any_other_host_keeps_the_address_checks(network: Network) -> None:
    network.names["hooks.example.com"] = ["10.0.0.9"]
    with pytest.raises(FetchRefused) as refused:
        fetch("POST", "http://hooks.example.com/", json={"a": 1})
    assert refused.value.code == "address_not_allowed"
    assert network.connects == []


def test_a_header_that_would_split_the_request_is_refused_before_anything_is_written(
    raw: list[RawServer],
) -> None:
    requests: list[bytes] = []
    server = RawServer(lambda request: requests.append(request) or _json_reply())
    raw.append(server)
    with pytest.raises(FetchError) as refused:
        fetch(
            "POST",
            f"http://127.0.0.1:{server.port}/",
            json={},
            headers={"Authorization": "Bearer t\r\nX-Injected: 1"},
        )
    assert (refused.value.code, refused.value.sent) == ("invalid_request", False)
    assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert len(requests) == 1 and b"X-Injected" not in requests[0]


def test_a_connection_idle_past_the_keep_alive_expiry_is_replaced(
    raw: list[RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RawServer(lambda request: _json_reply())
    raw.append(server)
    assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert server.accepted == 1
    monkeypatch.setattr(fetching, "KEEPALIVE_SECONDS", 0.0)
    time.sleep(0.01)
    assert fetch("POST", f"http://127.0.0.1:{server.port}/", json={}).status_code == 200
    assert server.accepted == 2


# -- HTTPS: HTTP/2 where the server offers it by ALPN, HTTP/1.1 where it does not ---------------------------


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by its own key (and the key), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / "certificate.pem", directory / "key.pem"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_file, key_file


def _server_tls(certificate: tuple[Path, Path], alpn: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.set_alpn_protocols(alpn)  # in the server's order of preference
    return context


@dataclass(frozen=True)
class H2Request:
    connection: int  # the server's count of TLS connections, from 0
    stream_id: int
    headers: dict[str, str]
    body: bytes


class H2Server:
    """An HTTPS server on 127.0.0.1 offering h2 and http/1.1 by ALPN that speaks HTTP/2 (the h2 library)
    and answers every request with `answer` as JSON. `protocols` is what each TLS connection negotiated;
    `requests` what came on them. With `hang_up`, a connection that has answered a request waits for the
    event `hang_up_now`, says GOAWAY (if `goaway`) and closes; `closed` gets each closed connection's
    number."""

    def __init__(
        self, certificate: tuple[Path, Path], answer: Any, *, hang_up: bool = False, goaway: bool = True
    ) -> None:
        self.answer = json.dumps(answer).encode()
        self.hang_up = hang_up
        self.goaway = goaway
        self.hang_up_now = threading.Event()
        self.closed: queue.Queue[int] = queue.Queue()
        self.tls = _server_tls(certificate, ["h2", "http/1.1"])
        self.protocols: list[str | None] = []
        self.requests: list[H2Request] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _connection(self, plain: socket.socket) -> None:
        number = -1
        try:
            with self.tls.wrap_socket(plain, server_side=True) as sock:
                number = len(self.protocols)
                self.protocols.append(sock.selected_alpn_protocol())
                if sock.selected_alpn_protocol() == "h2":
                    self._speak_h2(sock, number)
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            plain.close()
            self.closed.put(number)

    def _speak_h2(self, sock: ssl.SSLSocket, number: int) -> None:
        connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        heads: dict[int, dict[str, str]] = {}
        bodies: dict[int, bytes] = {}
        while data := sock.recv(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived) and event.stream_id and event.headers:
                    heads[event.stream_id] = {str(name): str(value) for name, value in event.headers}
                elif isinstance(event, h2.events.DataReceived) and event.stream_id and event.data:
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    connection.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id:
                    stream = event.stream_id
                    self.requests.append(
                        H2Request(number, stream, heads.pop(stream), bodies.pop(stream, b""))
                    )
                    connection.send_headers(
                        stream,
                        [
                            (":status", "200"),
                            ("content-type", "application/json"),
                            ("content-length", str(len(self.answer))),
                        ],
                    )
                    connection.send_data(stream, self.answer, end_stream=True)
                    if self.hang_up:
                        sock.sendall(connection.data_to_send())
                        self.hang_up_now.wait(timeout=5)
                        if self.goaway:
                            connection.close_connection(last_stream_id=stream)
                            sock.sendall(connection.data_to_send())
                        return
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            sock.sendall(connection.data_to_send())

    def close(self) -> None:
        """After the client's connections are closed: each connection's thread then sees the end."""
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def certificate(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path]]:
    """A certificate for 127.0.0.1 that the fetcher trusts (instead of the CA bundle), 127.0.0.1 an operator
    host (its private address allowed)."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    made = _self_signed_certificate(tmp_path)
    monkeypatch.setattr(fetching, "_ssl", ssl.create_default_context(cafile=str(made[0])))
    fetching.close_all()  # no client made with the real context is reused
    yield made
    fetching.close_all()  # nor one made with this one, after


@pytest.fixture
def h2_server(certificate: tuple[Path, Path]) -> Iterator[H2Server]:
    running = H2Server(certificate, {"messages": [{"id": "wamid.2"}]})
    yield running
    fetching.close_all()
    running.close()


def test_https_speaks_http2_where_the_server_offers_it_on_one_connection(h2_server: H2Server) -> None:
    url = h2_server.url("/v1/123/messages")
    posted = fetch("POST", url, json={"text": "héllo"}, headers={"Authorization": "Bearer t"})
    got = fetch("GET", url + "?fields=id")
    for response in (posted, got):
        assert (response.status_code, response.json()) == (200, {"messages": [{"id": "wamid.2"}]})
        assert response.headers["content-type"] == "application/json"
    # h2 by ALPN, and both requests as streams of that one TLS connection.
    assert h2_server.protocols == ["h2"]
    assert [(request.connection, request.stream_id) for request in h2_server.requests] == [(0, 1), (0, 3)]
    post, get = h2_server.requests
    assert (post.headers[":method"], post.headers[":path"], post.headers[":scheme"]) == (
        "POST",
        "/v1/123/messages",
        "https",
    )
    assert post.headers["authorization"] == "Bearer t"
    assert json.loads(post.body) == {"text": "héllo"}
    assert (get.headers[":method"], get.headers[":path"], get.body) == (
        "GET",
        "/v1/123/messages?fields=id",
        b"",
    )


def test_https_falls_back_to_http1_where_the_server_offers_only_that(
    certificate: tuple[Path, Path],
) -> None:
    seen: list[tuple[str | None, str, str, bytes]] = []
    client_ports: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection alive

        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            assert isinstance(self.connection, ssl.SSLSocket)
            seen.append((self.connection.selected_alpn_protocol(), self.request_version, self.command, body))
            client_ports.append(self.client_address[1])
            answer = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = _server_tls(certificate, ["http/1.1"]).wrap_socket(server.socket, server_side=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/"
        assert fetch("POST", url, json={"a": 1}).json() == {"ok": True}
        assert fetch("GET", url).json() == {"ok": True}
    finally:
        fetching.close_all()
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)
    assert seen == [("http/1.1", "HTTP/1.1", "POST", b'{"a":1}'), ("http/1.1", "HTTP/1.1", "GET", b"")]
    assert len(set(client_ports)) == 1  # one kept-alive TLS connection


def test_a_json_post_takes_the_kept_alive_connection_only_to_a_plain_http_operator_host(
    h2_server: H2Server, raw: list[RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """http.client cannot speak HTTP/2, and httpcore offers h2 on the shared TLS context: https goes
    through httpx."""
    taken: list[str] = []
    post_json = fetching._post_json

    def recording(url: Any, *args: Any) -> fetching.Fetched:
        taken.append(str(url))
        return post_json(url, *args)

    monkeypatch.setattr(fetching, "_post_json", recording)
    assert fetch("POST", h2_server.url("/send"), json={"n": 1}).status_code == 200
    assert taken == [] and h2_server.protocols == ["h2"] and len(h2_server.requests) == 1

    server = RawServer(lambda request: _json_reply())
    raw.append(server)
    plain = f"http://127.0.0.1:{server.port}/send"
    assert fetch("POST", plain, json={"n": 2}).json() == {"messages": [{"id": "wamid.1"}]}
    assert taken == [plain]


@pytest.mark.parametrize("goaway", [True, False], ids=["goaway", "without-goaway"])
def test_an_idle_http2_connection_the_server_closed_is_replaced_before_a_request_is_written(
    certificate: tuple[Path, Path], goaway: bool
) -> None:
    """httpcore checks an idle HTTP/1.1 connection for the server's close before reusing it, not an HTTP/2
    one: without core.fetch's check the request would be written into it and fail as possibly sent."""
    server = H2Server(certificate, {"ok": True}, hang_up=True, goaway=goaway)
    try:
        for n in range(3):
            assert fetch("POST", server.url("/send"), json={"n": n}).json() == {"ok": True}
            server.hang_up_now.set()  # the answer has been read: now the server closes the connection
            assert server.closed.get(timeout=5) == n
            server.hang_up_now.clear()
    finally:
        fetching.close_all()
        server.close()
    assert server.protocols == ["h2", "h2", "h2"]
    assert [(request.connection, request.stream_id) for request in server.requests] == [
        (0, 1),
        (1, 1),
        (2, 1),
    ]
