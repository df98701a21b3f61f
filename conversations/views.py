"""Inbox and reports pages. Thin: parse, call a selector or a service, render.

Full pages on a normal request; fragments for htmx and the socket module (static/js/inbox.js).
Every fragment checks visibility again, so a socket event never reveals more than the page would.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from conversations import (
    channels,
    consent,
    costs,
    rules,
    selectors,
    services,
    sla_selectors,
    teamops_selectors,
)
from conversations import media as media_serving
from conversations.errors import MessageRejected, WorkflowError
from conversations.models import Conversation, MediaFile, Message
from conversations.selectors import ContactField, ListFilters, Viewer
from core.errors import ServiceError
from core.http import service_error_response
from crm import variables
from crm.forms import ContactFieldForm, ContactForm, NoteForm
from crm.models import Agent, AttributeDefinition, Tag, Team
from crm.permissions import has_role
from crm.templatetags.ui import error_layout

TAGS = "inbox/_contact_tags.html"
NOTES = "inbox/_contact_notes.html"
STATUS_CHOICES = [
    ("open", "Open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("any", "Any status"),
]


# The contact panel shows the CRM's refusals beside the field (crm's error type until it is core's).
PANEL_ERRORS = (ServiceError,)


def staff_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in to this tenant; the Viewer is built once and handed to the view. A service's refusal
    (409 already_assigned: someone took the conversation first; 422 a sending rule) answers through
    core.http's one helper in the error shape, never a 500."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        viewer = selectors.viewer_for(request.user)
        try:
            return view(request, viewer, *args, **kwargs)
        except ServiceError as exc:
            return service_error_response(request, exc, layout=error_layout(request))

    return wrapper


def _is_fragment(request: HttpRequest) -> bool:
    if request.headers.get("HX-History-Restore-Request") == "true":
        return False
    return request.headers.get("HX-Request") == "true" or request.GET.get("fragment") == "1"


# Every lookup of a conversation or a message goes through selectors.get_visible_conversation /
# get_visible_message: Http404 when the viewer may not see it, whatever it is asked for.


def _conversation_or_404(viewer: Viewer, pk: int) -> Conversation:
    """The conversation as the thread shows it (contact, assignee, team, number, tags)."""
    return selectors.get_visible_conversation(
        viewer,
        pk,
        queryset=Conversation.objects.select_related(*selectors.THREAD_RELATED).prefetch_related("tags"),
    )


def _message_or_404(viewer: Viewer, pk: int) -> Message:
    return selectors.get_visible_message(
        viewer, pk, queryset=Message.objects.select_related("sender", "reply_to", "conversation", "media")
    )


def _list_context(request: HttpRequest, viewer: Viewer) -> dict[str, Any]:
    filters = ListFilters.from_query(request.GET)
    page = selectors.conversation_list(viewer, filters, cursor=request.GET.get("cursor", ""))
    return {
        "filters": filters,
        "page": page,
        "qs": urlencode(filters.as_query()),
        "status_choices": STATUS_CHOICES,
        "choices": selectors.filter_choices(),
    }


def _head_context(viewer: Viewer, conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "statuses": [s for s in Conversation.Status if s != Conversation.Status.SNOOZED],
        "viewer": viewer,
    }


def _thread_context(viewer: Viewer, conversation: Conversation) -> dict[str, Any]:
    # Not "messages": that name is Django's flash messages, which the layout shows as banners.
    found, more = selectors.thread_messages(conversation)
    # A number whose provider has no 24-hour window (a WhatsApp-Web gateway) is always open, with no
    # countdown; one without templates shows no template picker (conversations.channels capabilities).
    applies = selectors.window_applies(conversation.channel)
    closes = selectors.window_closes_at(conversation) if applies else None
    now = timezone.now()
    return {
        **_head_context(viewer, conversation),
        "thread_messages": found,
        "more_messages": more,
        "window_applies": applies,
        "templates_supported": selectors.templates_supported(conversation.channel),
        "number_status": selectors.number_status(conversation.channel),
        "window_closes_at": closes,
        "window_open": not applies or (closes is not None and closes > now),
        "window_seconds_left": int((closes - now).total_seconds()) if closes and closes > now else 0,
        "max_text": rules.TEXT_LIMIT,
        "send_notice": consent.send_notice(conversation.contact),
    }


@require_GET
@staff_view
def inbox_page(request: HttpRequest, viewer: Viewer) -> HttpResponse:
    return _render_inbox(request, viewer, None)


def _render_inbox(request: HttpRequest, viewer: Viewer, pk: int | None) -> HttpResponse:
    context: dict[str, Any] = {"nav": "inbox", "viewer": viewer, **_list_context(request, viewer)}
    context["counts"] = selectors.tab_unread_counts(viewer)
    context["seq"] = selectors.latest_event_id()
    if pk is not None:
        # Opening the URL marks nothing read: the page does, once the thread is visible (mark_read).
        conversation = _conversation_or_404(viewer, pk)
        context.update(_thread_context(viewer, conversation))
    return render(request, "inbox/inbox.html", context)


@require_GET
@staff_view
def conversation_list(request: HttpRequest, viewer: Viewer) -> HttpResponse:
    """The list's rows (htmx): a filter change, or the next page when `cursor` is given."""
    context = {"viewer": viewer, **_list_context(request, viewer)}
    template = "inbox/_rows.html" if request.GET.get("cursor") else "inbox/_list.html"
    if template == "inbox/_list.html":
        context["counts"] = selectors.tab_unread_counts(viewer)
    return render(request, template, context)


@require_GET
@staff_view
def tab_counts(request: HttpRequest, viewer: Viewer) -> JsonResponse:
    return JsonResponse(selectors.tab_unread_counts(viewer))


@require_GET
@staff_view
def conversation_row(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    """One row for a live update; 204 when it is not (or no longer) in the viewer's filtered list."""
    filters = ListFilters.from_query(request.GET)
    conversation = selectors.conversation_row(viewer, pk, filters)
    if conversation is None:
        return HttpResponse(status=204)
    return render(
        request, "inbox/_row.html", {"c": conversation, "viewer": viewer, "query": filters.as_query()}
    )


@require_GET
@staff_view
def conversation_page(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    if not _is_fragment(request):
        return _render_inbox(request, viewer, pk)
    conversation = _conversation_or_404(viewer, pk)
    return render(request, "inbox/_thread.html", _thread_context(viewer, conversation))


@require_GET
@staff_view
def thread_head(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    return _head(request, viewer, pk)


@require_GET
@staff_view
def thread_menu(request: HttpRequest, viewer: Viewer, pk: int, menu: str) -> HttpResponse:
    """The thread head's assign and tags menus, loaded when first opened: opening a conversation does not
    pay for the lists of agents, teams and tags."""
    conversation = _conversation_or_404(viewer, pk)
    if menu == "assign":
        context = {"agents": selectors.assignable_agents(), "teams": list(Team.objects.all())}
    else:
        context = {"all_tags": list(Tag.objects.all())}
    return render(request, f"inbox/_menu_{menu}.html", {"conversation": conversation, **context})


def _id_or_none(value: str) -> int | None:
    """An id from a query or a form: ASCII digits only (str.isdigit() also says yes to "²" and "٣", which
    int() refuses or reads as another number), and short enough for a bigint."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


@require_GET
@staff_view
def thread_messages(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    """Messages after an id (live updates, catch-up) or before one (load earlier)."""
    conversation = _conversation_or_404(viewer, pk)
    after = request.GET.get("after", "")
    before = request.GET.get("before", "")
    found, more = selectors.thread_messages(
        conversation,
        after=_id_or_none(after),
        before=_id_or_none(before),
    )
    return render(
        request,
        "inbox/_messages.html",
        {
            "conversation": conversation,
            "thread_messages": found,
            "more_messages": more,
            "paging": bool(before),
        },
    )


@require_GET
@staff_view
def message_fragment(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    return render(request, "inbox/_message.html", {"m": _message_or_404(viewer, pk)})


# ---------------------------------------------------------------------------------------------------
# The contact side panel (loaded after the thread, so opening a conversation stays fast). Reading it
# needs only sight of the conversation; changing the contact needs the CRM role that edits contacts.
# Each form swaps its own part: 422 with the message next to the input, 403 with a refusal; a save
# re-renders the whole panel and tells the list and the thread head (HX-Trigger; others hear it
# over the socket).
# ---------------------------------------------------------------------------------------------------

CONTACT_EDIT_ROLE = Agent.Role.AGENT.value  # README, "Roles": agents create and edit contacts
REFUSAL = {"code": "forbidden", "message": "Your role does not allow changing contacts."}


def _can_edit_contact(request: HttpRequest) -> bool:
    return has_role(request, CONTACT_EDIT_ROLE)


def _panel_context(request: HttpRequest, viewer: Viewer, conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "panel": selectors.contact_panel(conversation, viewer),
        "can_edit": _can_edit_contact(request),
        "viewer": viewer,  # the owners' link to the conversation's message costs
    }


def _panel_conversation_or_404(viewer: Viewer, pk: int) -> Conversation:
    return selectors.get_visible_conversation(viewer, pk, queryset=selectors.panel_queryset())


def _saved_panel(
    request: HttpRequest, viewer: Viewer, conversation: Conversation, *, saved: str, focus: str
) -> HttpResponse:
    conversation = _panel_conversation_or_404(viewer, conversation.pk)  # the contact as saved
    context = {**_panel_context(request, viewer, conversation), "saved": saved, "focus": focus}
    response = render(request, "inbox/_contact.html", context)
    # The form aimed at its own part; a save redraws the panel.
    response["HX-Retarget"] = "#contact-pane"
    response["HX-Reswap"] = "innerHTML"
    response["HX-Trigger"] = json.dumps({"inbox:contact-changed": {"conversation": conversation.pk}})
    return response


def _error_of(exc: ServiceError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


@require_GET
@staff_view
def contact_panel(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _panel_conversation_or_404(viewer, pk)
    return render(request, "inbox/_contact.html", _panel_context(request, viewer, conversation))


def _field_or_404(conversation: Conversation, name: str) -> ContactField:
    fields = selectors.contact_fields(conversation.contact, list(AttributeDefinition.objects.all()))
    field = next((f for f in (*fields[0], *fields[1]) if f.name == name), None)
    if field is None:
        raise Http404("No such contact field")
    return field


@require_http_methods(["GET", "POST"])
@staff_view
def contact_field(request: HttpRequest, viewer: Viewer, pk: int, field: str) -> HttpResponse:
    """One line of the panel: shown (GET), as a form (GET ?edit=1), saved (POST)."""
    conversation = _panel_conversation_or_404(viewer, pk)
    shown = _field_or_404(conversation, field)
    can_edit = _can_edit_contact(request)
    context: dict[str, Any] = {"conversation": conversation, "f": shown, "can_edit": can_edit}
    editing = request.method == "POST" or request.GET.get("edit") == "1"
    if editing and not can_edit:
        return render(request, "inbox/_contact_field.html", {**context, "error": REFUSAL}, status=403)
    if not editing:
        # Back from the form (Cancel): the line's button takes the focus again.
        return render(request, "inbox/_contact_field.html", {**context, "focus": field})
    initial = ContactForm.initial_for(conversation.contact)
    if request.method == "GET":
        form = ContactFieldForm(field, initial=initial, auto_id="cf-input-%s")
        return render(request, "inbox/_contact_field.html", {**context, "form": form})
    form = ContactFieldForm(field, request.POST, initial=initial, auto_id="cf-input-%s")
    if form.is_valid():
        try:
            services.edit_contact(conversation=conversation, by=request.user, **form.service_kwargs())
        except PANEL_ERRORS as exc:
            form.add_service_error(exc)
        else:
            return _saved_panel(request, viewer, conversation, saved=f"{shown.label} saved.", focus=field)
    errors = [
        (error.code or "invalid", message)
        for error in form.errors.as_data().get(field, []) + form.errors.as_data().get("__all__", [])
        for message in error.messages
    ]
    context.update(form=form, errors=errors)
    return render(request, "inbox/_contact_field.html", context, status=422)


def _section(
    request: HttpRequest,
    viewer: Viewer,
    conversation: Conversation,
    template: str,
    *,
    status: int,
    **extra: Any,
) -> HttpResponse:
    context = {**_panel_context(request, viewer, conversation), **extra}
    return render(request, template, context, status=status)


@require_POST
@staff_view
def contact_tag_add(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _panel_conversation_or_404(viewer, pk)
    name = request.POST.get("name", "")
    if not _can_edit_contact(request):
        return _section(request, viewer, conversation, TAGS, status=403, tags_error=REFUSAL)
    try:
        tag = services.tag_contact(conversation=conversation, name=name, by=request.user)
    except PANEL_ERRORS as exc:
        return _section(
            request, viewer, conversation, TAGS, status=422, tags_error=_error_of(exc), tag_value=name
        )
    return _saved_panel(request, viewer, conversation, saved=f"Tag {tag.name} added.", focus="tag")


@require_POST
@staff_view
def contact_tag_remove(request: HttpRequest, viewer: Viewer, pk: int, tag: int) -> HttpResponse:
    conversation = _panel_conversation_or_404(viewer, pk)
    found = Tag.objects.filter(pk=tag).first()
    if found is None:
        raise Http404("No such tag")
    if not _can_edit_contact(request):
        return _section(request, viewer, conversation, TAGS, status=403, tags_error=REFUSAL)
    services.untag_contact(conversation=conversation, tag=found, by=request.user)
    return _saved_panel(request, viewer, conversation, saved=f"Tag {found.name} removed.", focus="tag")


@require_POST
@staff_view
def contact_note_add(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _panel_conversation_or_404(viewer, pk)
    if not _can_edit_contact(request):
        return _section(request, viewer, conversation, NOTES, status=403, notes_error=REFUSAL)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.note_contact(conversation=conversation, body=form.cleaned_data["body"], by=request.user)
        except PANEL_ERRORS as exc:
            error = _error_of(exc)
        else:
            return _saved_panel(request, viewer, conversation, saved="Note added.", focus="note")
    else:
        first = form.errors.as_data()["body"][0]
        error = {"code": first.code or "invalid", "message": first.messages[0]}
    body = request.POST.get("body", "")
    return _section(request, viewer, conversation, NOTES, status=422, notes_error=error, note_value=body)


@require_GET
@staff_view
def canned_list(request: HttpRequest, viewer: Viewer) -> JsonResponse:
    """Saved replies matching `q`. With `conversation` (the open thread) or `contact` (the start-a-
    conversation composer), their variables come filled in for that contact and the signed-in user, so
    the composer inserts final text; without either, as written."""
    items = selectors.canned_responses(request.GET.get("q", "").strip()[:40])
    contact = None
    if request.GET.get("conversation"):
        contact = selectors.get_visible_conversation(viewer, request.GET["conversation"]).contact
    elif request.GET.get("contact"):
        contact = selectors.contact_for_composer(request.GET["contact"])
    results = []
    for c in items:
        text = variables.render(c.text, contact=contact, agent=request.user) if contact else c.text
        results.append({"shortcut": c.shortcut, "title": c.title, "text": text})
    return JsonResponse({"results": results})


# ---------------------------------------------------------------------------------------------------
# Workflow actions: each returns the re-rendered thread head (htmx swaps it in); everyone else hears
# about it over the socket.
# ---------------------------------------------------------------------------------------------------


def _head(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _conversation_or_404(viewer, pk)
    return render(request, "inbox/_thread_head.html", _head_context(viewer, conversation))


def _visible_or_404(viewer: Viewer, pk: int) -> Conversation:
    return selectors.get_visible_conversation(viewer, pk)


@require_POST
@staff_view
def assign(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _visible_or_404(viewer, pk)
    raw_agent, raw_team = request.POST.get("assignee", ""), request.POST.get("team", "")
    if (raw_agent and not raw_agent.isdigit()) or (raw_team and not raw_team.isdigit()):
        raise ServiceError(
            "invalid_assignee", status=400, message="Choose an agent and a team from the lists."
        )
    assignee = get_user_model().objects.filter(pk=int(raw_agent)).first() if raw_agent else None
    team = Team.objects.filter(pk=int(raw_team)).first() if raw_team else None
    if (raw_agent and assignee is None) or (raw_team and team is None):
        raise ServiceError("invalid_assignee", status=400, message="That agent or team does not exist.")
    services.assign_conversation(
        conversation=conversation, assignee=assignee, team=team, by=viewer, seen_assignee_id=_seen(request)
    )
    return _head(request, selectors.viewer_for(request.user), pk)


def _seen(request: HttpRequest) -> Any:
    """The assignee the page showed when the agent acted (the form's seen_assignee): someone else having
    taken the conversation since is a 409, not a silent overwrite."""
    raw = request.POST.get("seen_assignee")
    if raw is None:
        return services.AS_LOADED
    return int(raw) if raw.isdigit() else None


@require_POST
@staff_view
def take(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    services.take_conversation(
        conversation=_visible_or_404(viewer, pk), by=viewer, seen_assignee_id=_seen(request)
    )
    return _head(request, viewer, pk)


@require_POST
@staff_view
def set_status(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    services.set_conversation_status(
        conversation=_visible_or_404(viewer, pk), status=request.POST.get("status", ""), by=request.user
    )
    return _head(request, viewer, pk)


MAX_SNOOZE_HOURS = 24 * 366


@require_POST
@staff_view
def snooze(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    raw = request.POST.get("until", "")
    hours = request.POST.get("hours", "")
    if hours:
        count = _id_or_none(hours)
        if count is None or count > MAX_SNOOZE_HOURS:  # a timedelta that far out overflows: a 500
            raise ServiceError(
                "invalid_snooze", status=400, message=f"Snooze for 0 to {MAX_SNOOZE_HOURS} hours."
            )
        until = timezone.now() + dt.timedelta(hours=count)
    else:
        try:
            until = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise ServiceError(
                "invalid_snooze", status=400, message="Give the snooze time as YYYY-MM-DDTHH:MM."
            ) from None
        if timezone.is_naive(until):
            until = timezone.make_aware(until, selectors.tenant_time_zone())
    services.snooze_conversation(conversation=_visible_or_404(viewer, pk), until=until, by=request.user)
    return _head(request, viewer, pk)


@require_POST
@staff_view
def set_tags(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    ids = [i for i in map(_id_or_none, request.POST.getlist("tags")) if i is not None]
    tags = list(Tag.objects.filter(pk__in=ids))
    services.set_conversation_tags(conversation=_visible_or_404(viewer, pk), tags=tags, by=request.user)
    return _head(request, viewer, pk)


@require_POST
@staff_view
def mark_unread(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    services.mark_conversation_unread(conversation=_visible_or_404(viewer, pk), by=request.user)
    return _head(request, viewer, pk)


@require_POST
@staff_view
def bot(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    active = request.POST.get("active") == "on"
    services.set_bot_active(conversation=_visible_or_404(viewer, pk), active=active, by=request.user)
    return _head(request, viewer, pk)


@require_POST
@staff_view
def add_note(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    note = services.send_reply(
        conversation=_visible_or_404(viewer, pk),
        draft=services.Draft(kind="note", text=request.POST.get("text", "")),
        by=viewer,
    )
    return render(request, "inbox/_message.html", {"m": note})


# ---------------------------------------------------------------------------------------------------
# Sending: text, media, templates, retry. The client's idempotency key makes a double click, a resend
# after reconnect or a slow network store one message.
# ---------------------------------------------------------------------------------------------------


def _key(request: HttpRequest) -> str | None:
    key = request.POST.get("idempotency_key", "").strip()
    return key[:100] or None


def _bubble(request: HttpRequest, message: Any) -> HttpResponse:
    message = selectors.message_for(selectors.viewer_for(request.user), message.pk) or message
    return render(request, "inbox/_message.html", {"m": message})


@require_POST
@staff_view
def send(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _conversation_or_404(viewer, pk)
    key = _key(request)
    existing = selectors.message_by_key(key)
    if existing is not None:
        if existing.conversation_id != conversation.pk:
            raise ServiceError(
                "idempotency_key_reused", status=409, message="That key was used for another conversation."
            )
        return _bubble(request, existing)
    text = request.POST.get("text", "")
    upload = request.FILES.get("file")
    if upload is not None:
        # Refused before the file goes to Meta (blocked contact, no or inactive number).
        channel = services.check_sendable(conversation=conversation)
        media = channels.adapter_for(channel).upload_media(
            channel=channel,
            content=upload.read(),
            filename=upload.name or "file",
            mime_type=upload.content_type or "application/octet-stream",
        )
        draft = services.Draft(kind="media", media=media, text=text, idempotency_key=key)
    else:
        draft = services.Draft(kind="text", text=text, idempotency_key=key)
    message = services.send_reply(conversation=conversation, draft=draft, by=viewer)
    return _bubble(request, message)


@require_POST
@staff_view
def retry(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    message = _message_or_404(viewer, pk)
    return _bubble(request, services.retry_message(message=message, user=request.user))


def _template_values(request: HttpRequest, template: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's fields as send_template_message's parameters (and flat, for logs and tests)."""
    named = template.parameter_format.upper() == "NAMED"
    data = request.POST if request.method == "POST" else request.GET
    parameters: dict[str, Any] = {}
    preview_values: dict[str, str] = {}
    for part, placeholders in (
        ("header", template.header_placeholders()),
        ("body", template.body_placeholders()),
    ):
        values = {p: data.get(f"{part}_{p}", "").strip() for p in placeholders}
        preview_values.update({f"{part}:{k}": v for k, v in values.items()})
        if placeholders:
            parameters[part] = values if named else [values[p] for p in placeholders]
            if part == "header" and not named:
                parameters[part] = parameters[part][0] if len(placeholders) == 1 else parameters[part]
    return parameters, preview_values


def _template_context(
    request: HttpRequest,
    conversation: Conversation | None,
    *,
    channel: Any = None,
    picker_url: str = "",
    send_url: str = "",
) -> dict[str, Any]:
    """The picker for a conversation's number, or (starting a conversation) for `channel` with the
    start composer's URLs: one picker and parameter form for both."""
    if conversation is not None:
        channel = conversation.channel
        picker_url = picker_url or f"/inbox/c/{conversation.pk}/templates/"
        send_url = send_url or f"/inbox/c/{conversation.pk}/template/"
    templates = selectors.approved_templates_for(channel)
    # A refused start-composer send re-renders the form with what was typed.
    data = request.POST if request.method == "POST" else request.GET
    raw = data.get("template", "")
    chosen = next((t for t in templates if str(t.pk) == raw), None)
    context: dict[str, Any] = {
        "conversation": conversation,
        "templates": templates,
        "chosen": chosen,
        "picker_url": picker_url,
        "send_url": send_url,
    }
    if chosen is not None:
        named = chosen.parameter_format.upper() == "NAMED"

        def shown(part: str, placeholders: list[str]) -> Any:
            # Unfilled placeholders stay visible as {{x}} in the preview.
            values = {p: data.get(f"{part}_{p}", "").strip() for p in placeholders}
            if named:
                return {p: v for p, v in values.items() if v}
            return [values[p] or f"{{{{{p}}}}}" for p in placeholders]

        header_ps, body_ps = chosen.header_placeholders(), chosen.body_placeholders()
        context["fields"] = [
            {
                "name": f"{part}_{p}",
                "label": f"{part.title()} {{{{{p}}}}}",
                "value": data.get(f"{part}_{p}", ""),
            }
            for part, ps in (("header", header_ps), ("body", body_ps))
            for p in ps
        ]
        context["preview_header"] = chosen.render_header(shown("header", header_ps))
        context["preview_body"] = chosen.render_body(shown("body", body_ps))
    return context


@require_GET
@staff_view
def template_picker(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _conversation_or_404(viewer, pk)
    return render(request, "inbox/_templates.html", _template_context(request, conversation))


@require_POST
@staff_view
def send_template(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = _conversation_or_404(viewer, pk)
    templates = selectors.approved_templates(conversation)
    chosen = next((t for t in templates if str(t.pk) == request.POST.get("template", "")), None)
    if chosen is None:
        raise ServiceError(
            "invalid_template", status=400, message="Choose an approved template of this number."
        )
    parameters, _ = _template_values(request, chosen)
    draft = services.Draft(
        kind="template", template=chosen, parameters=parameters, idempotency_key=_key(request)
    )
    message = services.send_reply(conversation=conversation, draft=draft, by=viewer)
    return _bubble(request, message)


# ---------------------------------------------------------------------------------------------------
# Media, reading and typing. A file opens only for someone who sees its message's conversation; the
# customer's blue ticks and "typing…" follow what a person does on the page, never a GET (a link
# preview, a prefetch, a reload) of a conversation's URL.
# ---------------------------------------------------------------------------------------------------


@require_safe
@login_required
def media_file(request: HttpRequest, pk: int) -> HttpResponseBase:
    media = selectors.get_visible_media(selectors.viewer_for(request.user), pk)
    if media.status != MediaFile.Status.READY or not media.file:
        raise Http404("This file has not been downloaded")
    return media_serving.serve(media, asynchronous=isinstance(request, ASGIRequest), request=request)


@require_POST
@staff_view
def media_retry(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    """ "Retry download" of an inbound file: answers the message's bubble, now downloading."""
    media = selectors.get_visible_media(viewer, pk)
    channels.adapter_for(media.channel).retry_media_download(media=media)
    return _bubble(request, media.message)


@require_POST
@staff_view
def mark_read(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    """The thread is on screen (static/js/inbox-thread.js asks when the page is visible)."""
    services.mark_conversation_read(
        conversation=selectors.get_visible_conversation(viewer, pk), by=request.user
    )
    return HttpResponse(status=204)


@require_POST
@staff_view
def typing(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    """An agent is writing in the composer (throttled by the page and by the service)."""
    services.indicate_typing(conversation=selectors.get_visible_conversation(viewer, pk), by=request.user)
    return HttpResponse(status=204)


# ---------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------


def _date(raw: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


@require_GET
@staff_view
def reports_page(request: HttpRequest, viewer: Viewer) -> HttpResponse:
    if not viewer.can_supervise:
        raise ServiceError("forbidden", "Reports are for supervisors and admins.", status=403)
    today = timezone.localdate(timezone=selectors.tenant_time_zone())
    end = _date(request.GET.get("end"), today)
    start = _date(request.GET.get("start"), end - dt.timedelta(days=13))
    if start > end:
        start, end = end, start
    # A year at most: the chart stays readable and the query bounded.
    start = max(start, end - dt.timedelta(days=365))
    report = selectors.conversation_report(start=start, end=end)
    chart = {"days": report.days, "opened": report.opened, "resolved": report.resolved}
    # Messages by Meta's pricing category and type (counts; what they cost is the owners' page).
    tz = selectors.tenant_time_zone()
    pricing = costs.cost_report(
        since=dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        until=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )
    context = {"nav": "reports", "report": report, "chart": chart, "pricing": pricing}
    csat = teamops_selectors.csat_report(start=start, end=end)
    context.update(csat=csat, csat_tables=[("Agents", csat.agents), ("Teams", csat.teams)])
    sla = sla_selectors.sla_report(start=start, end=end)
    context.update(sla=sla, sla_tables=[("Agents", sla.agents), ("Teams", sla.teams)])
    return render(request, "reports/reports.html", context)


# ---------------------------------------------------------------------------------------------------
# Starting a conversation from a contact's pages ("Message"): pick the number, then free-form text inside
# the 24-hour window or an approved template outside it (the inbox's picker). The send goes through
# services.start_conversation; a refusal re-renders the composer with the reason and nothing stored, a
# success opens the conversation in the inbox. A plain page with plain POSTs: it works without scripts,
# and htmx only refreshes the template picker.
# ---------------------------------------------------------------------------------------------------

START_PAGE = "inbox/start.html"


def _start_urls(contact: Any, channel: Any) -> dict[str, str]:
    args = [contact.pk, channel.pk]
    return {
        "picker_url": reverse("inbox:start-templates", args=args),
        "send_url": reverse("inbox:start-send", args=args),
    }


def _number_or_404(pk: Any) -> Any:
    found = next((c for c in selectors.sending_numbers() if str(c.pk) == str(pk)), None)
    if found is None:
        raise Http404("No such WhatsApp number.")
    return found


def _start_context(
    request: HttpRequest, contact: Any, chosen: Any = None, *, error: dict[str, str] | None = None
) -> dict[str, Any]:
    numbers = selectors.sending_numbers()
    channel = next((c for c in numbers if str(c.pk) == str(chosen)), None) if chosen else None
    if channel is None:
        # The first number that can send, so a single connected number needs no choice at all.
        channel = next((c for c in numbers if c.is_active), numbers[0] if numbers else None)
    applies = channel is None or selectors.window_applies(channel)
    window_open = not applies or rules.is_window_open(contact.last_inbound_at)
    context: dict[str, Any] = {
        "contact": contact,
        "numbers": numbers,
        "channel": channel,
        "window_applies": applies,
        "window_open": window_open,
        "window_closes_at": rules.window_closes_at(contact.last_inbound_at) if applies else None,
        "error": error,
        "max_text": rules.TEXT_LIMIT,
        "text": request.POST.get("text", ""),
        # One key per rendered form: a double submit stores one message; a refused send stored nothing,
        # so its retry may reuse it.
        "idempotency_key": _key(request) or uuid.uuid4().hex,
    }
    if channel is not None:
        context.update(_start_urls(contact, channel))
        if not window_open:
            context.update(_template_context(request, None, channel=channel, **_start_urls(contact, channel)))
            context["plain_post"] = True
    return context


@require_GET
@staff_view
def start_page(request: HttpRequest, viewer: Viewer, contact: int) -> HttpResponse:
    found = selectors.contact_for_composer(contact)
    return render(request, START_PAGE, _start_context(request, found, request.GET.get("channel")))


@require_GET
@staff_view
def start_templates(request: HttpRequest, viewer: Viewer, contact: int, channel: int) -> HttpResponse:
    found = selectors.contact_for_composer(contact)
    number = _number_or_404(channel)
    context = _template_context(request, None, channel=number, **_start_urls(found, number))
    context.update(plain_post=True, idempotency_key=uuid.uuid4().hex)
    return render(request, "inbox/_templates.html", context)


@require_POST
@staff_view
def start_send(request: HttpRequest, viewer: Viewer, contact: int, channel: int) -> HttpResponse:
    found = selectors.contact_for_composer(contact)
    number = _number_or_404(channel)
    key = _key(request)
    if "template" in request.POST:
        templates = selectors.approved_templates_for(number)
        chosen = next((t for t in templates if str(t.pk) == request.POST["template"]), None)
        if chosen is None:
            error = {"code": "invalid_template", "message": "Choose an approved template of this number."}
            context = _start_context(request, found, number.pk, error=error)
            return render(request, START_PAGE, context, status=422)
        parameters, _ = _template_values(request, chosen)
        draft = services.Draft(kind="template", template=chosen, parameters=parameters, idempotency_key=key)
    else:
        draft = services.Draft(kind="text", text=request.POST.get("text", ""), idempotency_key=key)
    try:
        conversation, _ = services.start_conversation(contact=found, channel=number, draft=draft, by=viewer)
    except (MessageRejected, WorkflowError) as exc:
        # start_conversation is atomic: the refusal left no conversation and no message behind.
        error = {"code": exc.code, "message": exc.message}
        context = _start_context(request, found, number.pk, error=error)
        return render(request, START_PAGE, context, status=422)
    return HttpResponseRedirect(reverse("inbox:conversation", args=[conversation.pk]), status=303)
