"""Campaign pages (/campaigns/): the list, the create form with a live audience count, a campaign's page
with its live progress (campaign.progress events over the inbox WebSocket), failures, replies, the
controls and the CSV export. Supervisors and above see them; owners and admins create and control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from campaigns import selectors, services
from campaigns.forms import CampaignForm
from campaigns.models import Campaign
from conversations import channels as channel_registry
from conversations.models import Channel
from core import csvsafe
from core.errors import ServiceError
from crm.permissions import acting_user
from crm.views import can, member_required

EXPORT_HEADER = [
    "contact_id",
    "name",
    "phone",
    "status",
    "skip_reason",
    "error_code",
    "error_title",
    "message_id",
    "sent_at",
    "delivered_at",
    "read_at",
    "opted_out_at",
]


@require_GET
@member_required("supervisor")
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = list(Campaign.objects.select_related("channel").order_by("-id")[:200])
    return render(
        request,
        "campaigns/list.html",
        {
            "nav": "campaigns",
            "campaigns": campaigns,
            "manage": can(request, "admin"),
            "settings": services.campaign_settings(),
        },
    )


@require_POST
@member_required("admin")
def campaign_settings(request: HttpRequest) -> HttpResponse:
    services.update_campaign_settings(marketing_to_unknown=request.POST.get("marketing_to_unknown") == "on")
    messages.success(request, "Campaign settings saved.")
    return redirect("campaigns")


def _form_context(
    request: HttpRequest, form: CampaignForm, preview: dict[str, Any] | None = None
) -> dict[str, Any]:
    active = list(Channel.objects.filter(status=Channel.Status.ACTIVE).order_by("id"))
    channels = [c for c in active if channel_registry.supports(c, channel_registry.TEMPLATES)]
    templates = [(c, selectors.sendable_templates(c)) for c in channels]
    return {
        "nav": "campaigns",
        "form": form,
        "templates": templates,
        "channels": channels,
        # Numbers whose provider has no templates (a WhatsApp Web number): the page says why they are missing.
        "without_templates": [c for c in active if c not in channels],
        "preview": preview,
    }


def _build(request: HttpRequest, form: CampaignForm) -> tuple[dict[str, Any], Channel, str, str]:
    audience = form.audience()
    upload = form.cleaned_data.get("csv")
    if upload:
        audience = services.import_audience_csv(
            filename=upload.name, content=upload.read(), created_by=acting_user(request)
        )
    name, language = form.template_ref()
    return audience, form.cleaned_data["channel"], name, language


@member_required("admin")
def campaign_create(request: HttpRequest) -> HttpResponse:
    zone = services.tenant_zone()
    if request.method != "POST":
        return render(request, "campaigns/form.html", _form_context(request, CampaignForm(zone=zone)))
    form = CampaignForm(request.POST, request.FILES, zone=zone)
    if form.is_valid():
        try:
            # One transaction: a campaign refused (its parameters, say) leaves no contacts from its CSV.
            with transaction.atomic():
                audience, channel, name, language = _build(request, form)
                campaign = services.create_campaign(
                    name=form.cleaned_data["name"],
                    channel=channel,
                    template=name,
                    language=language,
                    audience=audience,
                    parameters=form.parameters(),
                    schedule_at=form.schedule(),
                    window_start=form.cleaned_data.get("window_start"),
                    window_end=form.cleaned_data.get("window_end"),
                    created_by=acting_user(request),
                )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            people = ngettext("%(n)d contact", "%(n)d contacts", campaign.total) % {"n": campaign.total}
            messages.success(request, f"Draft saved: {people} in the audience.")
            return redirect("campaign-detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", _form_context(request, form), status=400)


@require_POST
@member_required("admin")
def campaign_preview(request: HttpRequest) -> HttpResponse:
    """The audience's count for the form (htmx): who is reached and who is skipped, and why."""
    form = CampaignForm(request.POST, request.FILES, zone=None)
    form.is_valid()
    error = ""
    counts: dict[str, Any] | None = None
    limit: int | None = None
    shape: dict[str, Any] | None = None
    upload: dict[str, int] | None = None
    try:
        name, language = (form.cleaned_data.get("template") or "|").partition("|")[::2]
        channel = form.cleaned_data.get("channel")
        category = ""
        if channel is not None:
            limit = services.messaging_limit(channel)
            template = next(
                (
                    t
                    for t in selectors.sendable_templates(channel)
                    if (t.name, t.language) == (name, language)
                ),
                None,
            )
            category = template.category if template else ""
            if template is not None:
                shape = _template_shape(template)
        csv_file = form.cleaned_data.get("csv")
        if csv_file:
            # The file's contacts are created or updated only when the draft is saved: until then, what
            # it holds (the audience is then the file's numbers).
            _, phones, invalid = services.read_audience_csv(csv_file.read())
            upload = {"numbers": len(phones), "invalid": invalid}
        else:
            counts = services.resolve_audience(audience=form.audience(), category=category).counts()
    except ServiceError as exc:
        error = exc.message
    context = {"counts": counts, "error": error, "limit": limit, "template": shape, "upload": upload}
    return render(request, "campaigns/_preview.html", context)


def _template_shape(template: Any) -> dict[str, Any]:
    """What the form must fill for the chosen template: its body text and placeholders, and the kind of
    its header (a media header needs a link or an uploaded id)."""
    header = template.header_format()
    return {
        "body": (template.component("BODY") or {}).get("text", ""),
        "placeholders": template.body_placeholders(),
        "named": template.parameter_format == "NAMED",
        "media_header": header.lower() if header in ("IMAGE", "VIDEO", "DOCUMENT") else "",
    }


def _audience_now(campaign: Campaign, recipients: int) -> dict[str, Any] | None:
    """Before its recipients are fixed (a draft: they are when it is started or scheduled), who the
    campaign would reach now."""
    if campaign.status != Campaign.Status.DRAFT or recipients:
        return None
    try:
        counts = services.resolve_audience(audience=campaign.audience, category=campaign.category).counts()
    except ServiceError as exc:
        return {"error": exc.message}
    return {"counts": counts}


def _detail_context(campaign: Campaign) -> dict[str, Any]:
    counts = services.counters(campaign)
    done = counts["total"] - counts["pending"] - counts["queued"]
    return {
        "audience_now": _audience_now(campaign, counts["total"]),
        "nav": "campaigns",
        "campaign": campaign,
        "counts": counts,
        "count_rows": [(name, counts[name]) for name in services.COUNTED],
        "percent": round(100 * done / counts["total"]) if counts["total"] else 0,
        "failures": selectors.failures_by_code(campaign),
        "skips": selectors.skips_by_reason(campaign),
        "replies": selectors.replies(campaign),
        "opted_out": selectors.opted_out(campaign).count(),
        "opted_out_recent": selectors.opted_out(campaign)
        .select_related("contact")
        .order_by("-contact__marketing_consent_at")[:50],
        "limit": services.messaging_limit(campaign.channel),
    }


@require_GET
@member_required("supervisor")
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("channel"), pk=pk)
    context = _detail_context(campaign)
    context["manage"] = can(request, "admin")
    return render(request, "campaigns/detail.html", context)


ACTIONS: dict[str, Callable[..., Campaign]] = {
    "start": services.start_campaign,
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}


@require_POST
@member_required("admin")
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    run = ACTIONS.get(action)
    if run is None:
        return HttpResponse(status=404)
    try:
        run(campaign=campaign)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("campaign-detail", args=[campaign.pk]))


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@member_required("supervisor")
def campaign_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every recipient with their status, reason and Meta's error (cells safe from formula injection)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    writer = csvsafe.writer(_Echo())

    def rows() -> Any:
        yield writer.writerow(EXPORT_HEADER)
        for r in selectors.export_rows(campaign):
            m = r.message
            yield writer.writerow(
                [
                    r.contact_id,
                    r.contact.name,
                    r.contact.phone,
                    r.status,
                    r.skip_reason,
                    "" if r.error_code is None else r.error_code,
                    r.error_title,
                    r.message_id or "",
                    m.sent_at.isoformat() if m and m.sent_at else "",
                    m.delivered_at.isoformat() if m and m.delivered_at else "",
                    m.read_at.isoformat() if m and m.read_at else "",
                    opted.isoformat() if (opted := selectors.opted_out_after(r)) else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-recipients.csv"'
    return response
