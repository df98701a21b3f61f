"""Campaigns and their recipients in the owners' data export (conversations.data_export)."""

from __future__ import annotations

from campaigns.models import Campaign, Recipient
from conversations.data_export import model_dataset, register_dataset


def register() -> None:
    register_dataset(
        model_dataset(
            "campaigns",
            Campaign.objects.all,
            (
                "id", "name", "status", "channel__display_phone", "template_name", "language", "category",
                "total", "schedule_at", "created_at",
            ),
        )
    )  # fmt: skip
    register_dataset(
        model_dataset(
            "campaign_recipients",
            Recipient.objects.all,
            (
                "id", "campaign_id", "contact_id", "status", "skip_reason", "error_code", "error_title",
                "message_id", "updated_at",
            ),
        )
    )  # fmt: skip
