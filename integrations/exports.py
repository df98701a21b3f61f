"""Outgoing webhook endpoints in the owners' data export (conversations.data_export), never their secrets."""

from __future__ import annotations

from conversations.data_export import model_dataset, register_dataset
from integrations.models import WebhookEndpoint


def register() -> None:
    register_dataset(
        model_dataset(
            "webhook_endpoints",
            WebhookEndpoint.objects.all,
            ("id", "url", "description", "events", "active", "disabled_reason", "created_at"),
        )
    )
