"""/metrics: open on the public host (the platform's network), elsewhere only with METRICS_TOKEN."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django_tenants.utils import get_public_schema_name
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import conversations.metrics  # noqa: F401 - its gauges are exported even by a process with no socket yet
from config.prometheus import export_registry
from config.scrape_metrics import COLLECTOR
from core.errors import error_body

# Gauges computed per scrape (config.scrape_metrics), exported after the processes' own metrics. Not
# auto-described: registering must not query anything.
SCRAPE_REGISTRY = CollectorRegistry(auto_describe=False)
SCRAPE_REGISTRY.register(COLLECTOR)


def metrics_view(request: HttpRequest) -> HttpResponse:
    on_public_host = request.tenant.schema_name == get_public_schema_name()  # type: ignore[attr-defined]
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    expected = settings.METRICS_TOKEN or ""
    has_token = bool(expected) and constant_time_compare(token, expected)
    if not (on_public_host or has_token):
        return JsonResponse(error_body("forbidden", "Metrics need the metrics token."), status=403)
    # The mode comes from settings, not from os.environ at request time: Dramatiq's Prometheus
    # middleware writes PROMETHEUS_MULTIPROC_DIR into the environment of any process it boots in.
    registry = export_registry(settings.PROMETHEUS_MULTIPROC_DIR)
    body = generate_latest(registry) + generate_latest(SCRAPE_REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
