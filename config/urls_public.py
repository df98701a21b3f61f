"""The public host: platform admin, signup, webhook, /metrics (/healthz is answered by middleware on every
host)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from config.metrics import metrics_view
from waha.webhook import waha_webhook
from whatsapp.views import whatsapp_webhook

urlpatterns = [
    path("", TemplateView.as_view(template_name="public/home.html"), name="home"),
    path("", include("onboarding.urls_public")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("webhooks/whatsapp/", whatsapp_webhook, name="whatsapp-webhook"),
    path("webhooks/waha/<str:webhook_id>/", waha_webhook, name="waha-webhook"),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
handler403 = "config.errors.forbidden"
