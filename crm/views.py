"""Staff pages: contacts, companies, the deals board, tasks, settings (team, teams, API keys, attributes).

Thin: a form parses, a service writes, a selector reads. Roles as in README.md ("Roles").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.errors import ServiceError
from crm import contact_page, forms, selectors, services
from crm.api import csv_export_response
from crm.auth import PasswordResetConfirmView
from crm.models import (
    Agent,
    AttributeDefinition,
    Company,
    Contact,
    ContactImport,
    Deal,
    Invitation,
    Pipeline,
    Stage,
    Tag,
    Task,
    Team,
)
from crm.permissions import RANK

PAGE_SIZE = 50
View = Callable[..., HttpResponseBase]


def member_required(minimum: str = "agent") -> Callable[[View], View]:
    """Signed in as an agent of this tenant with at least `minimum`'s role; otherwise 403."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            role = selectors.role_of_user(request.user)
            if role is None or RANK[role] < RANK[minimum]:
                raise PermissionDenied
            request.crm_role = role  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def role_in(request: HttpRequest) -> str | None:
    return getattr(request, "crm_role", None)


def can(request: HttpRequest, minimum: str) -> bool:
    role = role_in(request)
    return role is not None and RANK[role] >= RANK[minimum]


MAX_PAGE = 10_000  # an OFFSET past PostgreSQL's bigint is an error, not an empty page


def _page(request: HttpRequest) -> int:
    try:
        return min(MAX_PAGE, max(1, int(request.GET.get("page", "1"))))
    except ValueError:
        return 1


def _slice(queryset: Any, page: int) -> tuple[list[Any], bool]:
    """One page without COUNT(*): ask for one row more than shown to know whether there is a next page."""
    start = (page - 1) * PAGE_SIZE
    rows = list(queryset[start : start + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


# ---------------------------------------------------------------------------------------------------
# Contacts
# ---------------------------------------------------------------------------------------------------


@member_required()
def contact_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    queryset = selectors.search_contacts(selectors.contacts(), query)
    filters = {
        "tag": request.GET.get("tag", ""),
        "consent": request.GET.get("consent", ""),
        "blocked": request.GET.get("blocked", ""),
        "owner": request.GET.get("owner", ""),
    }
    if filters["tag"]:
        queryset = queryset.filter(tags__name=filters["tag"])
    if filters["consent"] in Contact.MarketingConsent.values:
        queryset = queryset.filter(marketing_consent=filters["consent"])
    if filters["blocked"] in ("yes", "no"):
        queryset = queryset.filter(blocked=filters["blocked"] == "yes")
    if filters["owner"] == "me":
        queryset = queryset.filter(owner_id=request.user.pk)
    page = _page(request)
    rows, has_next = _slice(queryset.order_by("-id"), page)
    context = {
        "nav": "contacts",
        "contacts": rows,
        "query": query,
        "filters": filters,
        "tags": Tag.objects.all(),
        "consents": Contact.MarketingConsent.choices,
        "page": page,
        "has_next": has_next,
        "can_export": can(request, "supervisor"),
    }
    template = "crm/contacts/_rows.html" if request.headers.get("HX-Request") else "crm/contacts/list.html"
    return render(request, template, context)


def _save_contact(request: HttpRequest, contact: Contact | None) -> HttpResponse:
    phone_optional = bool(contact is not None and contact.whatsapp_user_id)
    if request.method == "POST":
        form = forms.ContactForm(request.POST, phone_optional=phone_optional)
        if form.is_valid():
            try:
                tags = services.tags_by_name(form.tag_names())
                if contact is None:
                    contact = services.create_contact(tags=tags, **form.service_kwargs())
                else:
                    contact = services.update_contact(contact=contact, tags=tags, **form.service_kwargs())
            except ServiceError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, "Contact saved.")
                return redirect("crm:contact-detail", pk=contact.pk)
    else:
        form = forms.ContactForm(
            initial=forms.ContactForm.initial_for(contact) if contact else None, phone_optional=phone_optional
        )
    return render(request, "crm/contacts/form.html", {"nav": "contacts", "form": form, "contact": contact})


@member_required()
def contact_create(request: HttpRequest) -> HttpResponse:
    return _save_contact(request, None)


@member_required()
def contact_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _save_contact(request, get_object_or_404(selectors.contacts(), pk=pk))


@member_required()
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(selectors.contacts(), pk=pk)
    definitions = list(AttributeDefinition.objects.all())
    context = {
        "nav": "contacts",
        "contact": contact,
        "attributes": [
            (d, contact.attributes.get(d.key)) for d in definitions if d.key in contact.attributes
        ],
        "deals": selectors.deals().filter(contact=contact)[:50],
        "tasks": selectors.tasks().filter(contact=contact)[:50],
        "notes": selectors.notes_of(contact)[:100],
        "note_form": forms.NoteForm(),
        "task_form": forms.TaskForm(initial={"contact": contact.pk}),
        "merge_form": forms.MergeForm(),
        "can_merge": can(request, "supervisor"),
        "now": timezone.now(),
        # The contact's conversations the viewer may see, from conversations (crm.contact_page).
        "conversations": [],
        **contact_page.extra_context(request, contact),
    }
    return render(request, "crm/contacts/detail.html", context)


@require_POST
@member_required()
def contact_add_note(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=pk)
    form = forms.NoteForm(request.POST)
    if form.is_valid():
        services.add_note(contact=contact, body=form.cleaned_data["body"], author=request.user)
        messages.success(request, "Note added.")
    else:
        messages.error(request, "A note needs some text.")
    return redirect("crm:contact-detail", pk=pk)


@require_POST
@member_required("supervisor")
def contact_merge(request: HttpRequest, pk: int) -> HttpResponse:
    keep = get_object_or_404(Contact, pk=pk)
    form = forms.MergeForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors.get("other", ["Pick a contact."])))
        return redirect("crm:contact-detail", pk=pk)
    try:
        services.merge_contacts(keep=keep, discard=form.cleaned_data["other"])
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Contacts merged.")
    return redirect("crm:contact-detail", pk=pk)


@require_POST
@member_required("supervisor")
def contact_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_contact(contact=get_object_or_404(Contact, pk=pk))
    messages.success(request, "Contact deleted.")
    return redirect("crm:contact-list")


@member_required("supervisor")
def contact_export(request: HttpRequest) -> HttpResponseBase:
    return csv_export_response(selectors.search_contacts(Contact.objects.all(), request.GET.get("q", "")))


@member_required("supervisor")
def contact_import(request: HttpRequest) -> HttpResponse:
    form = forms.ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = services.start_contact_import(
                filename=upload.name, content=upload.read(), created_by=request.user
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            return redirect("crm:contact-import-status", pk=job.pk)
    recent = ContactImport.objects.defer("content").select_related("created_by")[:10]
    context = {
        "nav": "contacts",
        "form": form,
        "recent": recent,
        "region": services.region_name(selectors.default_phone_region()),
        "is_admin": can(request, "admin"),
    }
    return render(request, "crm/contacts/import.html", context)


@member_required("supervisor")
def contact_import_status(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ContactImport.objects.defer("content"), pk=pk)
    context = {
        "nav": "contacts",
        "job": job,
        "rejections": job.rejections.all()[:500],
        "ignored": services.ignored_columns(job),
        "can_define": can(request, "admin"),
    }
    template = (
        "crm/contacts/_import_progress.html"
        if request.headers.get("HX-Request")
        else "crm/contacts/import_status.html"
    )
    return render(request, template, context)


# ---------------------------------------------------------------------------------------------------
# Pickers (crm.forms.PickerField): the options a picker's text input asks for as the user types
# ---------------------------------------------------------------------------------------------------


def _picker_options(request: HttpRequest, options: list[dict[str, Any]]) -> HttpResponse:
    return render(request, "crm/_picker_options.html", {"options": options})


@member_required()
def pick_contacts(request: HttpRequest) -> HttpResponse:
    options = [
        {
            "pk": c.pk,
            "label": str(c),
            "hint": c.phone if c.name else c.email,
            "fill": {"pk": c.company_id, "label": c.company.name} if c.company else None,
        }
        for c in selectors.pick_contacts(request.GET.get("q", ""))
    ]
    return _picker_options(request, options)


@member_required()
def pick_companies(request: HttpRequest) -> HttpResponse:
    options = [
        {"pk": c.pk, "label": c.name, "hint": c.domain}
        for c in selectors.pick_companies(request.GET.get("q", ""))
    ]
    return _picker_options(request, options)


@member_required()
def pick_deals(request: HttpRequest) -> HttpResponse:
    options = [
        {"pk": d.pk, "label": d.title, "hint": str(d.contact) if d.contact else ""}
        for d in selectors.pick_deals(request.GET.get("q", ""))
    ]
    return _picker_options(request, options)


# ---------------------------------------------------------------------------------------------------
# Companies
# ---------------------------------------------------------------------------------------------------


@member_required()
def company_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    queryset = selectors.companies()
    if query:
        queryset = queryset.filter(selectors.company_search_filter(query))
    page = _page(request)
    rows, has_next = _slice(queryset.order_by("name", "id"), page)
    return render(
        request,
        "crm/companies/list.html",
        {"nav": "companies", "companies": rows, "query": query, "page": page, "has_next": has_next},
    )


def _save_company(request: HttpRequest, company: Company | None) -> HttpResponse:
    initial = {"name": company.name, "domain": company.domain} if company else None
    form = forms.CompanyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            company = services.save_company(company=company, **form.cleaned_data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Company saved.")
            return redirect("crm:company-detail", pk=company.pk)
    return render(request, "crm/companies/form.html", {"nav": "companies", "form": form, "company": company})


@member_required()
def company_create(request: HttpRequest) -> HttpResponse:
    return _save_company(request, None)


@member_required()
def company_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _save_company(request, get_object_or_404(Company, pk=pk))


@member_required()
def company_detail(request: HttpRequest, pk: int) -> HttpResponse:
    company = get_object_or_404(Company, pk=pk)
    context = {
        "nav": "companies",
        "company": company,
        "contacts": selectors.contacts().filter(company=company).order_by("name")[:200],
        "deals": selectors.deals().filter(company=company)[:100],
    }
    return render(request, "crm/companies/detail.html", context)


# ---------------------------------------------------------------------------------------------------
# Deals
# ---------------------------------------------------------------------------------------------------


@member_required()
def deal_board(request: HttpRequest) -> HttpResponse:
    pipelines = list(Pipeline.objects.all())
    if not pipelines:
        pipelines = [services.default_pipeline()]
    chosen = next((p for p in pipelines if str(p.pk) == request.GET.get("pipeline")), pipelines[0])
    columns = []
    for stage, deals in selectors.board(chosen):
        columns.append({"stage": stage, "deals": deals, "total": sum(d.value for d in deals)})
    context = {"nav": "deals", "pipelines": pipelines, "pipeline": chosen, "columns": columns}
    return render(request, "crm/deals/board.html", context)


@require_POST
@member_required()
def deal_move(request: HttpRequest, pk: int) -> HttpResponse:
    """The board's drop target: JSON for the script, the error shape when the move is refused."""
    deal = get_object_or_404(Deal, pk=pk)
    stage = Stage.objects.filter(pk=request.POST.get("stage") or 0).first()
    if stage is None:
        raise ServiceError("not_found", "No such stage.", status=404)
    services.move_deal(deal=deal, stage=stage, by=request.user)  # a refusal: core.http's one handler
    return JsonResponse({"id": deal.pk, "stage": stage.pk, "status": deal.status})


def _save_deal(request: HttpRequest, deal: Deal | None) -> HttpResponse:
    initial: dict[str, Any] = {}
    if deal:
        initial = {
            "title": deal.title,
            "stage": deal.stage_id,
            "contact": deal.contact_id,
            "company": deal.company_id,
            "value": deal.value,
            "currency": deal.currency,
            "owner": deal.owner_id,
            "expected_close_date": deal.expected_close_date,
        }
    else:
        # A workspace's first deal: the board would make the standard pipeline on its first visit; a deal
        # started elsewhere (a contact's page) needs its stages too. New deals start in its first stage.
        first_stage = services.default_pipeline().stages.order_by("position", "id").first()
        initial = {"contact": request.GET.get("contact"), "owner": request.user.pk, "stage": first_stage}
        if request.GET.get("stage"):
            initial["stage"] = request.GET["stage"]
        contact_id = request.GET.get("contact", "")
        if contact_id.isascii() and contact_id.isdigit() and len(contact_id) < 19:
            initial["company"] = (
                Contact.objects.filter(pk=contact_id).values_list("company_id", flat=True).first()
            )
    form = forms.DealForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        stage = data.pop("stage")
        if deal is None and data["contact"] is not None and data["company"] is None:
            # What the picker's script prefills, also without it: a new deal is with the contact's company.
            data["company"] = data["contact"].company
        try:
            if deal is None:
                deal = services.create_deal(stage=stage, by=request.user, **data)
            else:
                if stage.pipeline_id != deal.pipeline_id:
                    raise ServiceError(
                        "invalid_stage", "Choose a stage of this deal's pipeline.", field="stage"
                    )
                deal = services.update_deal(deal=deal, stage=stage, by=request.user, **data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Deal saved.")
            return redirect("crm:deal-detail", pk=deal.pk)
    return render(request, "crm/deals/form.html", {"nav": "deals", "form": form, "deal": deal})


@member_required()
def deal_create(request: HttpRequest) -> HttpResponse:
    return _save_deal(request, None)


@member_required()
def deal_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _save_deal(request, get_object_or_404(Deal, pk=pk))


@member_required()
def deal_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deal = get_object_or_404(selectors.deals(), pk=pk)
    context = {
        "nav": "deals",
        "deal": deal,
        "history": deal.stage_history.select_related("from_stage", "to_stage", "changed_by"),
        "tasks": selectors.tasks().filter(deal=deal),
        "task_form": forms.TaskForm(initial={"deal": deal.pk, "contact": deal.contact_id}),
    }
    return render(request, "crm/deals/detail.html", context)


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------


@member_required()
def task_list(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "open")
    mine = request.GET.get("mine") == "1"
    queryset = selectors.tasks()
    if show == "open":
        queryset = queryset.filter(done=False)
    elif show == "overdue":
        queryset = selectors.overdue(queryset)
    elif show == "done":
        queryset = queryset.filter(done=True).order_by("-done_at", "-id")
    if mine:
        queryset = queryset.filter(assignee_id=request.user.pk)
    page = _page(request)
    rows, has_next = _slice(queryset, page)
    context = {
        "nav": "tasks",
        "tasks": rows,
        "show": show,
        "mine": mine,
        "page": page,
        "has_next": has_next,
        "overdue_count": selectors.overdue(Task.objects.all()).count(),
        "form": forms.TaskForm(initial={"assignee": request.user.pk}),
    }
    return render(request, "crm/tasks/list.html", context)


def _next_page(request: HttpRequest, default: str) -> str:
    """Where a form posted from another page goes back to: a page of this site only (never an open
    redirect to wherever `next` points)."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else default


@require_POST
@member_required()
def task_create(request: HttpRequest) -> HttpResponse:
    form = forms.TaskForm(request.POST)
    if form.is_valid():
        services.create_task(created_by=request.user, **form.cleaned_data)
        messages.success(request, "Task added.")
    else:
        problems = [
            f"{form[name].label if name in form.fields else 'Task'}: {' '.join(str(e) for e in errors)}"
            for name, errors in form.errors.items()
        ]
        messages.error(request, "The task was not added. " + " ".join(problems))
    return redirect(_next_page(request, reverse("crm:task-list")))


@require_POST
@member_required()
def task_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(selectors.tasks(), pk=pk)
    services.complete_task(task=task, done=not task.done)
    if request.headers.get("HX-Request"):
        return render(request, "crm/tasks/_row.html", {"task": task})
    return redirect(_next_page(request, reverse("crm:task-list")))


# ---------------------------------------------------------------------------------------------------
# Settings: team, teams, API keys, attributes
# ---------------------------------------------------------------------------------------------------


@member_required()
def settings_home(request: HttpRequest) -> HttpResponse:
    me = Agent.objects.filter(user_id=request.user.pk or 0).first()
    region_form = forms.PhoneRegionForm(initial={"phone_region": selectors.default_phone_region() or ""})
    if request.method == "POST" and "phone_region" in request.POST:
        if not can(request, "admin"):
            raise PermissionDenied
        region_form = forms.PhoneRegionForm(request.POST)
        if region_form.is_valid():
            try:
                tenant = request.tenant  # type: ignore[attr-defined]
                services.set_phone_region(tenant=tenant, region=region_form.cleaned_data["phone_region"])
            except ServiceError as exc:
                region_form.add_service_error(exc)
            else:
                messages.success(request, "Phone numbers' country saved.")
                return redirect("crm:settings")
    elif request.method == "POST" and me is not None:
        form = forms.AvailabilityForm(request.POST)
        if form.is_valid():
            services.set_agent_availability(agent=me, availability=form.cleaned_data["availability"])
            messages.success(request, "Availability updated.")
            # From the account menu on any page: back to that page.
            return redirect(_next_page(request, reverse("crm:settings")))
    context = {
        "nav": "settings",
        "me": me,
        "availability_form": forms.AvailabilityForm(
            initial={"availability": me.availability if me else "offline"}
        ),
        "is_admin": can(request, "admin"),
        "region_form": region_form,
    }
    return render(request, "crm/settings/home.html", context)


@member_required()
def team_page(request: HttpRequest) -> HttpResponse:
    is_admin = can(request, "admin")
    invite_form = forms.InviteForm(request.POST or None)
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied
        if invite_form.is_valid():
            try:
                services.invite_agent(
                    invited_by=request.user,
                    by_role=role_in(request),
                    **invite_form.cleaned_data,
                )
            except ServiceError as exc:
                invite_form.add_service_error(exc)
            else:
                messages.success(request, f"Invitation sent to {invite_form.cleaned_data['email']}.")
                return redirect("crm:team")
    context = {
        "nav": "settings",
        "agents": selectors.agents().select_related("invitation"),
        "roles": Agent.Role.choices,
        "invite_form": invite_form,
        "is_admin": is_admin,
        "teams": selectors.teams(),
    }
    return render(request, "crm/settings/team.html", context)


@require_POST
@member_required("admin")
def agent_role(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=pk)
    form = forms.RoleForm(request.POST)
    if form.is_valid():
        try:
            services.change_agent_role(agent=agent, role=form.cleaned_data["role"], by_role=role_in(request))
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{agent} is now {agent.get_role_display()}.")
    return redirect("crm:team")


@require_POST
@member_required("admin")
def agent_active(request: HttpRequest, pk: int) -> HttpResponse:
    """Deactivate or reactivate an agent (POST active=0|1); the service checks who may touch whom."""
    agent = get_object_or_404(Agent.objects.select_related("user"), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        services.set_agent_active(agent=agent, active=active, by_role=role_in(request), by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{agent} is {'active again' if active else 'deactivated'}.")
    return redirect("crm:team")


@require_POST
@member_required("admin")
def invitation_resend(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=pk)
    try:
        services.resend_invitation(invitation=invitation)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Invitation sent again.")
    return redirect("crm:team")


@member_required("admin")
def team_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    team = get_object_or_404(Team, pk=pk) if pk else None
    form = forms.TeamForm(request.POST or None, initial=forms.TeamForm.initial_for(team) if team else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.save_team(
                team=team,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                member_ids=[a.pk for a in form.cleaned_data["members"]],
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Team saved.")
            return redirect("crm:team")
    return render(request, "crm/settings/team_form.html", {"nav": "settings", "form": form, "team": team})


def _api_keys_page(request: HttpRequest, form: forms.ApiKeyForm, **extra: Any) -> HttpResponse:
    context = {
        "nav": "settings",
        "form": form,
        "keys": services.api_keys_visible_to(user=request.user, role=role_in(request)),
        "manages_all": can(request, "admin"),
        "now": timezone.now(),
        **extra,
    }
    return render(request, "crm/settings/api_keys.html", context)


@member_required()
def api_keys(request: HttpRequest) -> HttpResponse:
    """Everyone makes and manages their personal keys; admins and owners also integration keys, and see
    (and may revoke) every key of the workspace."""
    form = forms.ApiKeyForm(request.POST or None, maker_role=role_in(request))
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.create_api_key(
                created_by=request.user, by_role=role_in(request), **form.service_kwargs(user=request.user)
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            new_key = issued.raw
            form = forms.ApiKeyForm(maker_role=role_in(request))
    return _api_keys_page(request, form, new_key=new_key)


@require_POST
@member_required()
def api_key_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    # Someone else's key is not found (404), as if it did not exist, for whoever does not manage it.
    key = get_object_or_404(services.api_keys_visible_to(user=request.user, role=role_in(request)), pk=pk)
    if action not in ("rotate", "revoke"):
        raise Http404
    try:
        if action == "revoke":
            services.revoke_api_key(api_key=key, by=request.user, by_role=role_in(request))
            messages.success(request, f"Key {key.prefix}… revoked.")
            return redirect("crm:api-keys")
        issued = services.rotate_api_key(api_key=key, created_by=request.user, by_role=role_in(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("crm:api-keys")
    form = forms.ApiKeyForm(maker_role=role_in(request))
    return _api_keys_page(request, form, new_key=issued.raw, rotated=key)


@member_required("admin")
def attribute_definitions(request: HttpRequest) -> HttpResponse:
    form = forms.AttributeDefinitionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        data["choices"] = [c.strip() for c in data["choices"].split(",") if c.strip()]
        try:
            services.save_attribute_definition(**data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Attribute added.")
            return redirect("crm:attributes")
    context = {"nav": "settings", "form": form, "definitions": AttributeDefinition.objects.all()}
    return render(request, "crm/settings/attributes.html", context)


class InvitationAcceptView(PasswordResetConfirmView):
    """The invitation link: Django's password-reset token, so it works once and dies with the password."""

    template_name = "crm/invitation_accept.html"
    post_reset_login = True
    post_reset_login_backend = "crm.auth.RateLimitedModelBackend"
    success_url = "/inbox/"

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.accept_invitation(user=form.user)
        return response
