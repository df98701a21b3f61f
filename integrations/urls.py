"""Settings → Integrations pages (tenant hosts)."""

from django.urls import path

from integrations import views

urlpatterns = [
    path("settings/integrations/", views.webhook_list, name="integrations-webhooks"),
    path("settings/integrations/<int:pk>/", views.webhook_detail, name="integrations-webhook"),
    path(
        "settings/integrations/<int:pk>/deliveries/<int:delivery_id>/redeliver/",
        views.webhook_redeliver,
        name="integrations-webhook-redeliver",
    ),
    path(
        "settings/integrations/<int:pk>/<slug:action>/",
        views.webhook_action,
        name="integrations-webhook-action",
    ),
]
