"""Pages of team operations: Settings → CSAT, Settings → Macros (owners and admins), the @mention picker
and running a macro from the composer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations import selectors, teamops_selectors, views
from conversations.models import CannedResponse, Conversation, CsatSettings, Macro
from conversations.selectors import Viewer
from conversations.services import macros
from conversations.services.csat import update_csat_settings
from conversations.views import staff_view
from core.errors import ServiceError
from crm.models import Team
from crm.views import member_required


def _int(raw: str | None) -> int | str:
    try:
        return int(raw or "")
    except ValueError:
        return raw or ""


@require_http_methods(["GET", "POST"])
@member_required("admin")
def csat_settings(request: HttpRequest) -> HttpResponseBase:
    settings = CsatSettings.load()
    error, status = "", 200
    if request.method == "POST":
        changes: dict[str, Any] = {
            "enabled": request.POST.get("enabled") == "on",
            "ask_comment": request.POST.get("ask_comment") == "on",
            "question": request.POST.get("question", ""),
            "comment_prompt": request.POST.get("comment_prompt", ""),
            "thanks_text": request.POST.get("thanks_text", ""),
            "comment_minutes": _int(request.POST.get("comment_minutes")),
        }
        try:
            update_csat_settings(**changes)
        except ServiceError as exc:
            error, status = exc.message, 400
            for name, value in changes.items():
                setattr(settings, name, value)
        else:
            return redirect(reverse("inbox:settings-csat") + "?saved=1")
    context = {
        "nav": "settings",
        "settings": settings,
        "error": error,
        "saved": request.GET.get("saved") == "1" and not error,
    }
    return render(request, "inbox/settings/csat.html", context, status=status)


@require_GET
@staff_view
def mention_picker(request: HttpRequest, viewer: Viewer) -> JsonResponse:
    """Agents of this workspace whose name or e-mail starts with `q`, for the note's @ picker."""
    users = teamops_selectors.mentionable_agents(request.GET.get("q", "")[:60])
    return JsonResponse(
        {"results": [{"name": u.get_full_name() or u.email, "email": u.email} for u in users]}
    )


# --- Macros: Settings → Macros (owners and admins), and the composer's menu (any agent) ---


def _form_actions(post: Any) -> list[dict[str, Any]]:
    """The settings form's fields as actions, in a fixed order: reply, tags, team, status, snooze."""
    actions: list[dict[str, Any]] = []
    if post.get("canned"):
        actions.append({"type": "reply", "canned": _int(post.get("canned"))})
    tags = [t.strip() for t in post.get("tags", "").split(",") if t.strip()]
    if tags:
        actions.append({"type": "tags", "tags": tags})
    if post.get("team"):
        actions.append({"type": "team", "team": _int(post.get("team"))})
    if post.get("status"):
        actions.append({"type": "status", "status": post.get("status")})
    if post.get("snooze_minutes"):
        actions.append({"type": "snooze", "minutes": _int(post.get("snooze_minutes"))})
    return actions


def _macros_context(**extra: Any) -> dict[str, Any]:
    return {
        "nav": "settings",
        "macros": list(Macro.objects.all()),
        "canned": list(CannedResponse.objects.all()),
        "teams": list(Team.objects.order_by("name")),
        "labels": macros.ACTION_LABELS,
        **extra,
    }


@require_http_methods(["GET", "POST"])
@member_required("admin")
def macros_page(request: HttpRequest) -> HttpResponseBase:
    error, status = "", 200
    if request.method == "POST":
        try:
            macros.save_macro(name=request.POST.get("name", ""), actions=_form_actions(request.POST))
        except ServiceError as exc:
            error, status = exc.message, 400
        else:
            return redirect(reverse("inbox:settings-macros") + "?saved=1")
    context = _macros_context(
        error=error, saved=request.GET.get("saved") == "1" and not error, posted=request.POST
    )
    return render(request, "inbox/settings/macros.html", context, status=status)


@require_POST
@member_required("admin")
def macro_page(request: HttpRequest, pk: int) -> HttpResponseBase:
    """POST with delete=1: remove the macro (editing is delete and re-create, a macro being small)."""
    macro = get_object_or_404(Macro, pk=pk)
    if request.POST.get("delete") == "1":
        macro.delete()
    return redirect(reverse("inbox:settings-macros") + "?saved=1")


@require_GET
@staff_view
def macro_menu(request: HttpRequest, viewer: Viewer, pk: int) -> HttpResponse:
    conversation = selectors.get_visible_conversation(viewer, pk)
    return render(
        request, "inbox/_macro_menu.html", {"conversation": conversation, "macros": Macro.objects.all()}
    )


@require_POST
@staff_view
def run_macro_view(request: HttpRequest, viewer: Viewer, pk: int, macro: int) -> HttpResponse:
    conversation = selectors.get_visible_conversation(
        viewer, pk, queryset=Conversation.objects.select_related("contact", "channel")
    )
    found = get_object_or_404(Macro, pk=macro)
    macros.run_macro(macro=found, conversation=conversation, by=viewer)
    return views._head(request, viewer, pk)
