"""Message templates: synced from Meta and kept current by its webhooks."""

from __future__ import annotations

import structlog
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import Channel
from whatsapp import parsing
from whatsapp.client import client_for
from whatsapp.models import MessageTemplate

log = structlog.get_logger("whatsapp")


def apply_template_update(*, waba_id: str, update: parsing.TemplateUpdate) -> int:
    """The template by Meta's id, else by name and language (webhooks write en-US where the
    templates API writes en_US). One Meta has not been synced yet is left to the next template sync."""
    fields: dict[str, str] = {}
    if update.status:
        fields["status"] = update.status
        fields["status_reason"] = update.reason
    if update.category:
        fields["category"] = update.category
    if update.quality_score:
        fields["quality_score"] = update.quality_score
    if not fields:
        return 0
    match = Q(meta_id=update.template_id) if update.template_id else Q(pk__in=[])
    if update.name and update.language:
        match |= Q(
            name=update.name,
            language__in={update.language, update.language.replace("-", "_")},
        )
    updated = MessageTemplate.objects.filter(match, waba_id=waba_id).update(**fields)
    if not updated:
        log.info(
            "whatsapp_template_update_for_unknown_template",
            waba_id=waba_id,
            name=update.name,
        )
    return updated


@transaction.atomic
def sync_templates(*, channel: Channel) -> int:
    """Every page of the account's templates; templates Meta no longer lists are removed."""
    now = timezone.now()
    seen: list[int] = []
    for item in client_for(channel).iter_templates(waba_id=channel.waba_id):
        template, _ = MessageTemplate.objects.update_or_create(
            waba_id=channel.waba_id,
            name=str(item.get("name", ""))[:512],
            language=str(item.get("language", ""))[:15],
            defaults={
                "meta_id": str(item.get("id", "")),
                "category": str(item.get("category", ""))[:30],
                "status": str(item.get("status", ""))[:30],
                "parameter_format": str(item.get("parameter_format") or "POSITIONAL")[:20],
                "components": item.get("components") or [],
                "synced_at": now,
            },
        )
        seen.append(template.pk)
    MessageTemplate.objects.filter(waba_id=channel.waba_id).exclude(pk__in=seen).delete()
    Channel.objects.filter(pk=channel.pk).update(templates_synced_at=now)
    return len(seen)
