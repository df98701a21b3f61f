"""The client's address, for every layer (sign-in throttling in crm, the audit log in core).

`client_ip()` believes X-Forwarded-For only from the proxies in settings.FORWARDED_ALLOW_IPS (empty by
default: no one), the same rule uvicorn applies with `--forwarded-allow-ips`, so a client cannot pick
the address its attempts are counted against or recorded under.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

import structlog
from django.conf import settings

log = structlog.get_logger("net")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _trusted_proxies(entries: tuple[str, ...]) -> tuple[bool, tuple[Network, ...]]:
    if "*" in entries:
        return True, ()
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            log.warning("forwarded_allow_ips_ignored", entry=entry)
    return False, tuple(networks)


def _is_trusted_proxy(address: str) -> bool:
    trust_all, networks = _trusted_proxies(tuple(settings.FORWARDED_ALLOW_IPS))
    if trust_all:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _host_of(hop: str) -> str:
    # "1.2.3.4:5678" and "[2001:db8::1]:443" carry a port; a bare IPv6 address has colons of its own.
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def client_ip(request: Any) -> str:
    """The client's address: REMOTE_ADDR, or, when that is a trusted proxy, the nearest address in
    X-Forwarded-For that is not one (proxies append, so the right end is the one to believe)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    if not settings.FORWARDED_ALLOW_IPS or not _is_trusted_proxy(remote):
        return remote
    hops = [_host_of(h) for h in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted_proxy(hop):
            return hop[:64]
    # Every hop is a trusted proxy: the client is one of ours.
    return hops[0][:64] if hops else remote
