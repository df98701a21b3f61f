"""Settings → WhatsApp templates: the accounts' templates, new templates submitted to Meta, deletion.

Every member may look (agents choose templates when they reply); owners and admins create, delete and
sync, as the API (whatsapp.api). Thin: the form builds a draft, whatsapp.services.templates does the rest.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.errors import ServiceError
from crm.views import can, member_required
from whatsapp.models import MessageTemplate
from whatsapp.services import templates as template_services
from whatsapp.template_forms import TemplateForm

STATUSES = ["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "PENDING_DELETION", "IN_APPEAL"]


def _page(request: HttpRequest, form: TemplateForm | None, status: int = 200) -> HttpResponse:
    accounts = template_services.tenant_accounts()
    shown = request.GET.get("status", "").upper()
    rows = MessageTemplate.objects.filter(waba_id__in=accounts).order_by("waba_id", "name", "language")
    if shown:
        rows = rows.filter(status=shown)
    by_account: dict[str, list[MessageTemplate]] = {account: [] for account in accounts}
    for template in rows:
        by_account[template.waba_id].append(template)
    context = {
        "nav": "settings",
        "accounts": by_account,
        "statuses": STATUSES,
        "shown_status": shown if shown in STATUSES else "",
        "form": form,
        "manage": can(request, "admin"),
    }
    return render(request, "whatsapp/templates/list.html", context, status=status)


@member_required("agent")
def template_list(request: HttpRequest) -> HttpResponse:
    form = TemplateForm(accounts=template_services.tenant_accounts()) if can(request, "admin") else None
    return _page(request, form)


@member_required("admin")
@require_POST
def template_create(request: HttpRequest) -> HttpResponse:
    form = TemplateForm(request.POST, accounts=template_services.tenant_accounts())
    if form.is_valid():
        try:
            template = template_services.create_template(
                waba_id=form.cleaned_data["waba_id"], draft=form.draft()
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                f"Template “{template.name}” ({template.language}) submitted: Meta says {template.status}.",
            )
            return redirect("whatsapp-templates")
    return _page(request, form, status=400)


@member_required("admin")
@require_POST
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    accounts = template_services.tenant_accounts()
    template = get_object_or_404(MessageTemplate, pk=pk, waba_id__in=accounts)
    if request.POST.get("confirm") != template.name:
        messages.error(request, f"Type the template's name, {template.name}, to delete it.")
        return redirect("whatsapp-templates")
    try:
        template_services.delete_template(template=template)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Template “{template.name}” ({template.language}) deleted.")
    return redirect("whatsapp-templates")


@member_required("admin")
@require_POST
def template_sync(request: HttpRequest) -> HttpResponse:
    accounts = template_services.tenant_accounts()
    waba_id = request.POST.get("waba_id", "")
    for account in [waba_id] if waba_id else accounts:
        try:
            count = template_services.sync_account_templates(waba_id=account)
        except ServiceError as exc:
            messages.error(request, f"{account}: {exc.message}")
        else:
            messages.success(request, f"{account}: {count} templates read from Meta.")
    return redirect("whatsapp-templates")
