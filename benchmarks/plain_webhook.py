"""The comparison issue 14 asks for: webhook POSTs through a plain async Django view (the whole
middleware stack, Django's ASGI handler) that stores each body with `abulk_create`, instead of the
ingress bypass (whatsapp/ingress.py). Only the benchmark serves it:
`uvicorn benchmarks.plain_webhook:application` (benchmarks/webhook.py does)."""

from __future__ import annotations

import os

from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

from django.conf import settings  # noqa: E402

from config.urls_public import urlpatterns as public_urlpatterns  # noqa: E402
from tenants.models import WebhookEvent  # noqa: E402
from whatsapp import webhook  # noqa: E402
from whatsapp.actors import wake_webhook_processing  # noqa: E402
from whatsapp.services import webhook_secrets  # noqa: E402


@csrf_exempt
async def plain_webhook(request: HttpRequest) -> HttpResponse:
    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    verdict = webhook.check_webhook(
        body=request.body,
        signature=request.headers.get("X-Hub-Signature-256", ""),
        secrets=await sync_to_async(webhook_secrets)(),
        limit=limit,
    )
    if isinstance(verdict, webhook.Rejected):
        return HttpResponse(verdict.json(), status=verdict.status, content_type="application/json")
    [event] = await WebhookEvent.objects.abulk_create(
        [
            WebhookEvent(
                body=verdict.body,
                phone_number_ids=verdict.phone_number_ids,
                waba_ids=verdict.waba_ids,
                status=WebhookEvent.Status.PENDING,
            )
        ]
    )
    await sync_to_async(wake_webhook_processing)()
    return JsonResponse({"status": "accepted", "event": event.pk})


urlpatterns = [path("webhooks/whatsapp/", plain_webhook), *public_urlpatterns]
# The public host's URLs, with this view in front of the webhook's (read per request by django-tenants).
settings.PUBLIC_SCHEMA_URLCONF = "benchmarks.plain_webhook"
