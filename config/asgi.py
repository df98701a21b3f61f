"""HTTP goes to Django (webhook POSTs to the ingress first); /ws/ goes through the tenant-resolving,
session-authenticating middleware."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.websocket import TenantAuthMiddleware  # noqa: E402
from config.ws_urls import websocket_urlpatterns  # noqa: E402
from whatsapp.ingress import WebhookIngress  # noqa: E402

# Webhook POSTs skip Django's request machinery (whatsapp/ingress.py says why); the rest is Django.
webhook_ingress = WebhookIngress(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": webhook_ingress,
        "websocket": AllowedHostsOriginValidator(TenantAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
