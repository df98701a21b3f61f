"""The one way the server fetches a URL (trust rules in ARCHITECTURE.md): SSRF-safe, bounded in size and time.

Two checks, so that neither a crafted URL nor DNS can make the server reach what it must not:

1. The URL, before anything is sent and again at every redirect: http or https only, no user:password@,
   port 80 or 443 unless the host is operator-configured, and the caller's host allow-list (Meta's media
   hosts, the Graph API's own origin, ...).
2. The connection, in the pooled client's network backend (httpcore's hook for opening sockets): the host
   is resolved once, the connection is refused if any address is private, loopback, link-local,
   multicast, reserved or unspecified (or an IPv4-mapped, 6to4 or NAT64 IPv6 form of one), and the socket
   is opened to the very address that was checked. There is no second lookup, so a DNS answer that changes
   between check and connect (rebinding) cannot move the connection. TLS is unaffected: httpcore starts TLS
   with the URL's host name, so SNI and certificate checks are for the name, not the address.

Hosts in OUTBOUND_ALLOWED_HOSTS are configured by the operator (the sandboxes, the Graph API URL's host,
a platform-wide gateway): they may be on private addresses and use any port. OUTBOUND_ALLOW_PRIVATE_NETWORKS
lifts the address refusal for every other host (local development only).

Over https the pooled client offers h2 and http/1.1 by ALPN and speaks HTTP/2 when the server picks it;
plain http is HTTP/1.1 (no h2c). A JSON POST to a plain-http operator host skips httpx (_post_json).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import json as jsonlib
import re
import select
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
# IPv6 forms that carry an IPv4 address a gateway may forward to: checked as that IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# inet_aton's legacy forms (2130706433, 0x7f.1, 0177.0.0.1): the C resolver accepts them as addresses.
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


class FetchError(Exception):
    """The fetch failed. `code` is stable; `sent` is False when the request cannot have reached the server
    (so repeating it cannot do anything twice)."""

    def __init__(self, code: str, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.sent = sent


class FetchRefused(FetchError):
    """The URL, a redirect or the address the host resolves to is not allowed. Nothing was sent; retrying
    cannot help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, sent=False)


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after any redirect that was followed
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        try:
            return self.content.decode(_charset(self.headers), errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _charset(headers: httpx.Headers) -> str:
    match = re.search(r"charset=([\w-]+)", headers.get("content-type", ""), re.IGNORECASE)
    return match.group(1) if match else "utf-8"


# -- policy ------------------------------------------------------------------------------------------------


def _normalise(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """`host` is one of `patterns`: an exact name or address, or `*.example.com` for any subdomain."""
    host = _normalise(host)
    for pattern in patterns:
        wanted = _normalise(pattern)
        if wanted.startswith("*."):
            if host.endswith(wanted[1:]) and len(host) > len(wanted) - 1:
                return True
        elif wanted and host == wanted:
            return True
    return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, _normalise(url.host), url.port or DEFAULT_PORTS.get(url.scheme)


@functools.lru_cache(maxsize=256)
def _pattern_origin(pattern: str) -> tuple[str, str, int | None]:
    return _origin(httpx.URL(pattern))


def _allowed_by(url: httpx.URL, patterns: Iterable[str]) -> bool:
    """Patterns are host patterns (any port the port rule allows) or origins (`http://127.0.0.1:8001`:
    that scheme, host and port only)."""
    for pattern in patterns:
        if "://" in pattern:
            if _pattern_origin(pattern) == _origin(url):
                return True
        elif host_matches(url.host, [pattern]):
            return True
    return False


def is_operator_host(host: str) -> bool:
    return host_matches(host, settings.OUTBOUND_ALLOWED_HOSTS)


def is_public_address(address: IPAddress) -> bool:
    """Reachable on the public internet: not private, loopback, link-local, multicast, reserved or
    unspecified, directly or inside an IPv6 form that embeds an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
        if address.teredo is not None:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _literal_address(host: str) -> IPAddress | None:
    host = _normalise(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (tests replace this: no outside network)."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


def addresses_for(host: str, port: int) -> list[IPAddress]:
    """The addresses a connection to `host` may use, each checked; raises FetchRefused if any is not public
    (unless OUTBOUND_ALLOW_PRIVATE_NETWORKS), httpcore.ConnectError if the name does not resolve."""
    name = _normalise(host)
    literal = _literal_address(name)
    if literal is not None:
        addresses = [literal]
    elif name == "localhost" or name.endswith(".localhost"):
        # Loopback by definition (RFC 6761), whatever a resolver says.
        addresses = [ipaddress.IPv4Address("127.0.0.1")]
    else:
        try:
            addresses = resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
    if not settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS:
        for address in addresses:
            if not is_public_address(address):
                raise FetchRefused(
                    "address_not_allowed",
                    f"{host} is or resolves to {address}, a private or reserved address.",
                )
    return addresses


def check_url(
    url: str | httpx.URL,
    *,
    allowed_hosts: Iterable[str] | None = None,
    https_only: bool = False,
    resolve_host: bool = False,
) -> httpx.URL:
    """The URL parsed, if the server may fetch it; FetchRefused says why not. `resolve_host` also checks the
    addresses now (to tell a user early); fetching checks them again at connect time regardless."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused("invalid_url", f"Not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise FetchRefused("scheme_not_allowed", "Only http and https URLs are fetched.")
    if parsed.userinfo:
        raise FetchRefused("credentials_in_url", "URLs with a user name or password are not fetched.")
    if not parsed.host:
        raise FetchRefused("invalid_url", "The URL has no host.")
    operator = is_operator_host(parsed.host)
    if https_only and parsed.scheme != "https" and not operator:
        raise FetchRefused("scheme_not_allowed", f"Only https is allowed for {parsed.host}.")
    if parsed.port not in (None, 80, 443) and not operator:
        raise FetchRefused("port_not_allowed", f"Port {parsed.port} is not allowed: only 80 and 443.")
    if allowed_hosts is not None and not _allowed_by(parsed, allowed_hosts):
        raise FetchRefused("host_not_allowed", f"{parsed.host} is not an allowed host for this request.")
    if resolve_host and not operator:
        try:
            addresses_for(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme])
        except httpcore.ConnectError as exc:
            raise FetchRefused("host_not_found", str(exc)) from exc
    return parsed


# -- the connection ----------------------------------------------------------------------------------------


class _GuardedBackend(httpcore.SyncBackend):
    """Opens each connection to an address it has checked (see the module docstring)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if is_operator_host(host):
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses_for(host, port):
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # try the host's next address, as the system's own connect would
        raise error


class _Connection(httpcore.HTTPConnection):
    """httpcore's connection, but an idle HTTP/2 one is checked before reuse as httpcore checks only an
    HTTP/1.1 one: if its socket reads as ready, the server has closed it (a GOAWAY, the end) or sent frames
    no request asked for, and it is expired (closed and replaced) rather than have a request written into
    it and fail as possibly sent."""

    def has_expired(self) -> bool:
        inner: Any = self._connection  # httpcore's private parts: it is pinned below 2.0
        if (
            isinstance(inner, httpcore.HTTP2Connection)
            and inner.is_idle()
            and inner._network_stream.get_extra_info("is_readable")
        ):
            return True
        return super().has_expired()


class _GuardedPool(httpcore.ConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        return _Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            network_backend=self._network_backend,
        )


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False, verify=_ssl_context(), http2=True)
        # httpx has no public option for the network backend: its pool is replaced by one with the same
        # options, ours and _Connection's check (HTTPTransport keeps the pool in `_pool`; httpx is pinned
        # below 1.0). HTTP/2 only where TLS negotiates it by ALPN: with http1 also on, plain http stays 1.1.
        self._pool = _GuardedPool(
            ssl_context=_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=True,
            network_backend=_GuardedBackend(),
        )


_ssl: Any = None
_ssl_lock = threading.Lock()


def _ssl_context() -> Any:
    """One TLS context (the CA bundle loaded once) for every thread's client: wrapping sockets with it is
    thread-safe. httpcore sets its ALPN protocols (h2, http/1.1) at every connect, so nothing that cannot
    speak HTTP/2 may use it."""
    global _ssl
    with _ssl_lock:
        if _ssl is None:
            _ssl = httpx.create_ssl_context()
    return _ssl


_local = threading.local()
# A thread talks to a handful of hosts (the Graph API, a media host, a tenant's LLM) one request at a time.
PER_THREAD_CONNECTIONS = 8
# Every thread's client and kept-alive connections, for close_all.
_opened: weakref.WeakSet[Any] = weakref.WeakSet()


def client() -> httpx.Client:
    """The calling thread's pooled client, so requests reuse kept-alive connections. One per thread, not
    one per process: a shared pool serialises every request of every thread on its lock and scans all of
    its connections under it, which was a quarter of a bulk send's HTTP cost with 64 sending threads. It
    ignores proxy and .netrc variables (a proxy would do the connecting, unchecked; .netrc would add
    credentials), keeps no cookie (one tenant's endpoint must not set what another's request carries)
    and follows no redirect itself: `fetch` checks each hop."""
    existing: httpx.Client | None = getattr(_local, "client", None)
    if existing is None or existing.is_closed:  # close_all closed it
        existing = _local.client = httpx.Client(
            transport=_GuardedTransport(
                limits=httpx.Limits(
                    max_connections=PER_THREAD_CONNECTIONS, max_keepalive_connections=PER_THREAD_CONNECTIONS
                )
            ),
            trust_env=False,
            follow_redirects=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # keeps none
        )
        _opened.add(existing)
    return existing


def close_all() -> None:
    """Close every thread's pooled connections (tests: a kept-alive connection must not carry a request
    to another test's server on the same host and port)."""
    for opened in list(_opened):
        opened.close()


# -- fetching ----------------------------------------------------------------------------------------------


def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Mapping[str, Any] | None = None,
    files: Any = None,
    content: bytes | None = None,
    allowed_hosts: Iterable[str] | None = None,
    https_only: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 10.0,
    total_timeout: float = 60.0,
    max_redirects: int = 0,
    cross_origin_redirects: bool = False,
) -> Fetched:
    """Send one request and read the response, at most `max_bytes` of body (read as a stream and abandoned
    past the limit) and at most `total_timeout` seconds in all (`timeout` bounds each network wait).

    Redirects of GET and HEAD are followed up to `max_redirects`, each hop checked like the first URL; one
    to another origin is refused unless `cross_origin_redirects`, and then `headers` (credentials) are not
    sent there. A redirect not followed is returned as the response.

    A JSON POST to a plain-http operator-configured host (the sandboxes, an in-cluster gateway) goes out
    on a kept-alive connection of the thread's own (_post_json), not through httpx: same checks and limits,
    a quarter of the CPU, which is most of a campaign send's cost. Over https (the real Graph API) it goes
    through the pooled client, which negotiates HTTP/2.
    """
    patterns = list(allowed_hosts) if allowed_hosts is not None else None
    target = check_url(url, allowed_hosts=patterns, https_only=https_only)
    first_origin = _origin(target)
    deadline = time.monotonic() + total_timeout
    if (
        method.upper() == "POST"
        and json is not None
        and params is None
        and data is None
        and files is None
        and content is None
        and target.scheme == "http"
        and is_operator_host(target.host)
    ):
        return _post_json(target, headers, json, max_bytes, timeout, deadline)
    body: dict[str, Any] = {"params": params, "json": json, "data": data, "files": files, "content": content}
    for hop in range(max_redirects + 1):
        response = _exchange(method, target, headers, body, max_bytes, timeout, deadline)
        location = response.headers.get("location")
        if (
            response.status_code not in REDIRECT_STATUSES
            or not location
            or hop == max_redirects
            or method.upper() not in ("GET", "HEAD")
        ):
            return response
        try:
            joined = target.join(location)
        except httpx.InvalidURL as exc:
            raise FetchRefused("invalid_url", f"Not a valid redirect: {exc}") from exc
        if _origin(joined) != first_origin:
            if not cross_origin_redirects:
                raise FetchRefused(
                    "redirect_not_allowed", f"A redirect to another host ({joined.host}) is not followed."
                )
            headers = None
        target = check_url(joined, allowed_hosts=patterns, https_only=https_only)
        body = {}  # the query of the first URL is not carried over, and GET/HEAD have no body
    raise AssertionError("unreachable")  # pragma: no cover


def _exchange(
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str] | None,
    body: dict[str, Any],
    max_bytes: int,
    timeout: float,
    deadline: float,
) -> Fetched:
    try:
        with client().stream(
            method,
            url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            **body,
        ) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("too_large", f"The response is larger than {max_bytes} bytes.", sent=True)
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(
                        "too_large", f"The response is larger than {max_bytes} bytes.", sent=True
                    )
                if time.monotonic() > deadline:
                    raise FetchError("timeout", "The response took too long.", sent=True)
                chunks.append(chunk)
            return Fetched(
                url=str(response.url),
                status_code=response.status_code,
                headers=response.headers,
                content=b"".join(chunks),
            )
    except FetchError:
        raise
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise FetchError("connect_failed", f"Could not connect to {url.host}: {type(exc).__name__}") from exc
    except httpx.TimeoutException as exc:
        raise FetchError(
            "timeout", f"{url.host} did not answer in time: {type(exc).__name__}", sent=True
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            "network", f"Network error with {url.host}: {type(exc).__name__}", sent=True
        ) from exc


# -- JSON POSTs to operator-configured hosts ----------------------------------------------------------------

USER_AGENT = "wacrm"


def _post_json(
    url: httpx.URL,
    headers: Mapping[str, str] | None,
    payload: Any,
    max_bytes: int,
    timeout: float,
    deadline: float,
) -> Fetched:
    """One JSON POST on the calling thread's kept-alive connection to the URL's origin (http.client from
    the standard library: httpx's layers cost four times the CPU for the same request). Only for plain-http
    URLs of hosts in OUTBOUND_ALLOWED_HOSTS, whose addresses are not checked (see the module docstring); the
    URL was. Never https: httpcore sets ALPN h2 on the shared TLS context, which http.client cannot speak.

    What the caller must know is whether the request may have reached the server: a connection that
    cannot be opened is `connect_failed` with sent=False; anything after the first byte went out is
    sent=True. A kept-alive connection the server has closed is found before it is used (its socket reads
    as ready: end of file), so a request is never written into one."""
    connection = _kept_alive(url)
    body = jsonlib.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    target = url.raw_path.decode("ascii")
    sending = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    try:
        if connection.sock is None:
            connection.timeout = min(timeout, CONNECT_TIMEOUT)
            connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(timeout)
    except (OSError, http.client.HTTPException) as exc:
        _drop(url)
        raise FetchError("connect_failed", f"Could not connect to {url.host}: {type(exc).__name__}") from exc
    try:
        connection.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
        for name, value in sending.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
    except (ValueError, http.client.HTTPException) as exc:  # a line break in a header: nothing was written
        _drop(url)
        raise FetchError("invalid_request", f"The request cannot be sent: {exc}") from exc
    try:
        connection.endheaders(body)
        response = connection.getresponse()
        declared = response.getheader("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError("too_large", f"The response is larger than {max_bytes} bytes.", sent=True)
        chunks: list[bytes] = []
        total = 0
        while chunk := response.read(min(65536, max_bytes + 1 - total) or 1):
            total += len(chunk)
            if total > max_bytes:
                raise FetchError("too_large", f"The response is larger than {max_bytes} bytes.", sent=True)
            if time.monotonic() > deadline:
                raise FetchError("timeout", "The response took too long.", sent=True)
            chunks.append(chunk)
    except FetchError:
        _drop(url)
        raise
    except TimeoutError as exc:
        _drop(url)
        raise FetchError(
            "timeout", f"{url.host} did not answer in time: {type(exc).__name__}", sent=True
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        _drop(url)
        raise FetchError(
            "network", f"Network error with {url.host}: {type(exc).__name__}", sent=True
        ) from exc
    if response.will_close:
        _drop(url)
    return Fetched(
        url=str(url),
        status_code=response.status,
        headers=httpx.Headers(response.getheaders()),
        content=b"".join(chunks),
    )


# A connection idle longer than this is closed rather than reused (httpx's default keep-alive expiry):
# a server that drops idle connections after a few seconds could otherwise close one as a request goes.
KEEPALIVE_SECONDS = 5.0


def _kept_alive(url: httpx.URL) -> http.client.HTTPConnection:
    """The thread's plain-http connection to the URL's origin: the open one unless it idled past
    KEEPALIVE_SECONDS or the server closed it meanwhile, else a new one (not connected yet)."""
    connections: dict[tuple[str, str, int | None], http.client.HTTPConnection] = _local.__dict__.setdefault(
        "kept_alive", {}
    )
    used: dict[tuple[str, str, int | None], float] = _local.__dict__.setdefault("used", {})
    origin = _origin(url)
    connection = connections.get(origin)
    now = time.monotonic()
    idle = now - used.get(origin, now)
    if connection is not None and connection.sock is not None:
        expired = idle > KEEPALIVE_SECONDS or _closed_by_peer(connection.sock)
        if expired:
            connection.close()
    used[origin] = now
    if connection is None:
        connection = http.client.HTTPConnection(url.host, url.port or DEFAULT_PORTS[url.scheme])
        connections[origin] = connection
        _opened.add(connection)
    return connection


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle kept-alive socket that reads as ready has been closed by the server (or holds bytes no
    request asked for): either way it must not carry another request."""
    poller = select.poll()  # not select.select: a web process may hold sockets numbered past 1024
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


def _drop(url: httpx.URL) -> None:
    connection = _local.__dict__.get("kept_alive", {}).pop(_origin(url), None)
    if connection is not None:
        connection.close()
