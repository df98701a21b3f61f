"""WhatsApp metrics (Prometheus). Never a tenant label: tenants are unbounded, series must not be."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_REQUESTS = Counter("wacrm_whatsapp_webhook_requests_total", "Webhook requests by result", ["result"])
# Changes of a verified body that their own number's secret did not sign (never stored for it).
WEBHOOK_REJECTED_CHANGES = Counter(
    "wacrm_whatsapp_webhook_rejected_changes_total",
    "Webhook changes refused because their number's own app secret did not sign the body",
)
WEBHOOK_ACK_SECONDS = Histogram(
    "wacrm_whatsapp_webhook_ack_seconds",
    "Time from receiving a webhook POST to acknowledging it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
MESSAGES = Counter(
    "wacrm_whatsapp_messages_total", "Messages by direction, type and status", ["direction", "type", "status"]
)
SEND_SECONDS = Histogram(
    "wacrm_whatsapp_send_seconds",
    "Graph API send call latency",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SEND_RETRIES = Counter("wacrm_whatsapp_send_retries_total", "Send attempts scheduled again", ["reason"])
SEND_FAILURES = Counter(
    "wacrm_whatsapp_send_failures_total", "Sends failed for good, by class", ["retry_class"]
)
LIMITER_WAIT_SECONDS = Histogram(
    "wacrm_whatsapp_limiter_wait_seconds",
    "Time a send waited for its number's throughput slot",
    buckets=(0.0, 0.005, 0.0125, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
MEDIA_DOWNLOADS = Counter("wacrm_whatsapp_media_downloads_total", "Inbound media downloads", ["result"])
