"""A tenant's host: its staff pages, its admin and its API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from config.metrics import metrics_view
from crm.auth import LoginView, PasswordResetConfirmView, PasswordResetView
from crm.two_factor_views import two_factor_login
from waha.webhook import waha_webhook

urlpatterns = [
    path("", RedirectView.as_view(url="/inbox/", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("login/", LoginView.as_view(), name="login"),
    path("login/two-factor/", two_factor_login, name="two-factor-login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Throttled, and the emailed link is built from the tenant's configured domain (crm.auth).
    path("password-reset/", PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"
    ),
    path("metrics", metrics_view, name="metrics"),
    # Served on every host like the Cloud API webhook: the webhook id, not the host, names the number.
    path("webhooks/waha/<str:webhook_id>/", waha_webhook, name="waha-webhook"),
    path("", include("conversations.urls")),
]

# API v1: each app adds its routes here; all share config/api.py's conventions.
api_v1 = [
    path("", include("crm.api_urls")),
    path("", include("conversations.api_urls")),
    path("", include("whatsapp.api_urls")),
    path("", include("knowledge.api_urls")),
    path("", include("knowledge.ai_api_urls")),
    path("", include("campaigns.api_urls")),
    path("", include("integrations.api_urls")),
]
urlpatterns += [
    path("", include("crm.urls")),
    path("", include("onboarding.urls")),
    path("", include("campaigns.urls")),
    path("", include("integrations.urls")),
    path("", include("knowledge.ai_urls")),
    path("", include("knowledge.urls")),
    path("", include("waha.urls")),
    path("", include("whatsapp.urls")),
    path("", include("whatsapp.template_urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
handler403 = "config.errors.forbidden"
