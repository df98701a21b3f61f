"""API v1 routes of outgoing webhooks (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from integrations import api

urlpatterns = [
    path("webhooks/", api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<int:pk>/", api.WebhookDetailView.as_view(), name="api-webhook"),
    path(
        "webhooks/<int:pk>/deliveries/", api.WebhookDeliveryListView.as_view(), name="api-webhook-deliveries"
    ),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_id>/redeliver/",
        api.WebhookRedeliverView.as_view(),
        name="api-webhook-redeliver",
    ),
]
