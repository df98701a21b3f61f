"""Message templates: synced from Meta and kept current by its webhooks."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import Channel
from core import audit
from core.errors import ServiceError
from whatsapp import parsing, template_rules
from whatsapp.client import GraphError, RetryClass, client_for
from whatsapp.models import MessageTemplate

log = structlog.get_logger("whatsapp")


def apply_template_update(*, waba_id: str, update: parsing.TemplateUpdate) -> int:
    """The template by Meta's id, else by name and language (webhooks write en-US where the
    templates API writes en_US). One Meta has not been synced yet is left to the next template sync."""
    fields: dict[str, Any] = {}
    if update.status:
        fields["status"] = update.status
        fields["status_reason"] = update.reason
    if update.category:
        fields["category"] = update.category
    if update.quality_score:
        fields["quality_score"] = update.quality_score
    if update.pending_category:
        # Announced: the category Meta applies at category_change_at (new_category is the current one).
        fields["pending_category"] = update.pending_category
        fields["category_change_at"] = update.category_change_at
    elif update.previous_category:
        # Completed: the announced change (if any) has happened.
        fields["previous_category"] = update.previous_category
        fields["pending_category"] = ""
        fields["category_change_at"] = None
    if not fields:
        return 0
    match = Q(meta_id=update.template_id) if update.template_id else Q(pk__in=[])
    if update.name and update.language:
        match |= Q(
            name=update.name,
            language__in={update.language, update.language.replace("-", "_")},
        )
    templates = MessageTemplate.objects.filter(match, waba_id=waba_id)
    updated = templates.update(**fields)
    if update.category and not update.pending_category:
        # A status update naming the announced category also means the change happened.
        templates.filter(pending_category=update.category).update(
            pending_category="", category_change_at=None
        )
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


# -- templates made in the app ------------------------------------------------------------------------


class TemplateError(ServiceError):
    """invalid_template (400, details.problems: each rule broken), unknown_account (404),
    template_exists (409), template_refused (422: Meta refused it), graph_unavailable (502)."""


def account_channel(*, waba_id: str) -> Channel:
    """A Cloud API number of this tenant in the account: its token manages the account's templates.
    An account the tenant has no number of is not there (404), whatever exists elsewhere."""
    channels = Channel.objects.filter(provider=Channel.Provider.CLOUD_API, waba_id=waba_id).exclude(
        waba_id=""
    )
    channel = channels.filter(status=Channel.Status.ACTIVE).first() or channels.first()
    if channel is None:
        raise TemplateError(
            "unknown_account",
            "No WhatsApp number of this workspace is in that account.",
            field="waba_id",
            status=404,
        )
    return channel


def tenant_accounts() -> list[str]:
    return sorted(
        set(
            Channel.objects.filter(provider=Channel.Provider.CLOUD_API)
            .exclude(waba_id="")
            .values_list("waba_id", flat=True)
        )
    )


def _graph_failure(error: GraphError, *, action: str) -> TemplateError:
    """Meta's reason, said plainly. A refusal (bad content, a name in use) is the user's to fix; the rest
    is Meta or the network, and nothing was stored either way."""
    detail = f"{error.title}" + (
        f": {error.details}" if error.details and error.details != error.title else ""
    )
    if error.retry_class in (RetryClass.RETRY, RetryClass.UNCERTAIN):
        return TemplateError(
            "graph_unavailable",
            f"Meta could not be reached to {action} the template; nothing was changed. Try again shortly.",
            status=502,
            details={"graph_code": error.code, "graph_message": detail[:500]},
        )
    if error.retry_class == RetryClass.AUTH:
        return TemplateError(
            "graph_auth",
            f"Meta refused this account's access token, so the template could not be {action}d. "
            "Reconnect the number and try again.",
            status=502,
            details={"graph_code": error.code, "graph_message": detail[:500]},
        )
    return TemplateError(
        "template_refused",
        f"Meta refused to {action} the template: {detail[:400]}",
        status=422,
        details={"graph_code": error.code, "graph_message": detail[:500]},
    )


def create_template(*, waba_id: str, draft: dict[str, Any]) -> MessageTemplate:
    """Check Meta's rules, submit the template for review, then store it as Meta answered (PENDING).
    Nothing is stored unless Meta accepted it."""
    channel = account_channel(waba_id=waba_id)
    problems = template_rules.check_draft(draft)
    if problems:
        raise TemplateError(
            "invalid_template",
            "The template breaks "
            + ("one of Meta's rules." if len(problems) == 1 else f"{len(problems)} of Meta's rules."),
            details={"problems": [p.as_dict() for p in problems]},
        )
    request = template_rules.request_of(draft)
    if MessageTemplate.objects.filter(
        waba_id=waba_id, name=request["name"], language=request["language"]
    ).exists():
        raise TemplateError(
            "template_exists",
            "This account already has a template with that name and language.",
            field="name",
            status=409,
        )
    try:
        answer = client_for(channel).create_template(waba_id=waba_id, body=request)
    except GraphError as error:
        log.info("whatsapp_template_refused", waba_id=waba_id, code=error.code)
        raise _graph_failure(error, action="create") from error
    with transaction.atomic():
        template = MessageTemplate.objects.create(
            waba_id=waba_id,
            meta_id=answer.id,
            name=request["name"],
            language=request["language"],
            category=(answer.category or request["category"])[:30],
            status=(answer.status or "PENDING")[:30],
            parameter_format=request.get("parameter_format", "POSITIONAL"),
            components=request["components"],
            synced_at=timezone.now(),
        )
        audit.record(
            "template.created",
            target=template,
            details={"waba_id": waba_id, "name": template.name, "language": template.language},
        )
    return template


def delete_template(*, template: MessageTemplate) -> None:
    """Delete it at Meta (this language only, by its id) and here. Meta keeps the name unusable for a
    while; that is Meta's rule, not ours."""
    channel = account_channel(waba_id=template.waba_id)
    try:
        client_for(channel).delete_template(
            waba_id=template.waba_id, name=template.name, template_id=template.meta_id
        )
    except GraphError as error:
        if error.code != 100 or error.retry_class != RetryClass.PERMANENT or "not exist" not in error.title:
            raise _graph_failure(error, action="delete") from error
        # Meta no longer has it: remove ours too.
    with transaction.atomic():
        audit.record(
            "template.deleted",
            target=template,
            details={"waba_id": template.waba_id, "name": template.name, "language": template.language},
        )
        template.delete()


def sync_account_templates(*, waba_id: str) -> int:
    """ "Sync now" on the templates page: the account's templates read again from Meta."""
    channel = account_channel(waba_id=waba_id)
    try:
        return sync_templates(channel=channel)
    except GraphError as error:
        raise _graph_failure(error, action="sync") from error
