"""Conversations' Prometheus metrics. Never a tenant label: tenants are unbounded, series must not be."""

from __future__ import annotations

from prometheus_client import Gauge

# Summed over the live web processes (multiprocess mode): a process that dies takes its sockets with it.
WEBSOCKET_CONNECTIONS = Gauge(
    "wacrm_websocket_connections",
    "Open WebSocket connections of agents' live inboxes",
    multiprocess_mode="livesum",
)
