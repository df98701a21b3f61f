"""The notification centre: the bell's dropdown and count, the full list (/notifications/), marking read,
and the e-mail preferences on Settings → Me. Every query is filtered by the signed-in user: another
user's notification (of this tenant or any other) is answered 404, as if it did not exist."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.errors import ServiceError
from crm.models import Notification
from crm.services import notifications as service
from crm.views import _page, _slice

MENU_SIZE = 8


def _own(request: HttpRequest) -> Any:
    return Notification.objects.filter(user_id=request.user.pk or 0)


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    rows = _own(request)
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    page = _page(request)
    items, has_next = _slice(rows.order_by("-created_at", "-id"), page)
    context = {
        "nav": "",
        "items": items,
        "page": page,
        "has_next": has_next,
        "unread_only": unread_only,
        "unread": service.unread_count(user=request.user),
    }
    return render(request, "crm/notifications/list.html", context)


@login_required
def notification_menu(request: HttpRequest) -> HttpResponse:
    """The bell's dropdown (an htmx fragment): the latest few, newest first."""
    items = list(_own(request).order_by("-created_at", "-id")[:MENU_SIZE])
    unread = service.unread_count(user=request.user)
    return render(request, "crm/notifications/_menu.html", {"items": items, "unread": unread})


@login_required
def notification_summary(request: HttpRequest) -> JsonResponse:
    """For the bell's script: the unread count and the latest notifications (shown as text, never HTML,
    in the badge and in desktop notifications). `after` limits them to those newer than an id."""
    rows = _own(request).order_by("-created_at", "-id")
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    if after > 0:
        rows = rows.filter(pk__gt=after)
    latest = [
        {
            "id": n.pk,
            "kind": n.kind,
            "title": n.title,
            "body": n.body[:300],
            "url": n.url,
            "read": n.read_at is not None,
        }
        for n in rows[:MENU_SIZE]
    ]
    return JsonResponse({"unread": service.unread_count(user=request.user), "latest": latest})


def _next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


@login_required
@require_POST
def notification_read(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Mark one read; `open=1` then goes to what it is about (a path on this site)."""
    try:
        notification = service.mark_notification_read(user=request.user, notification_id=pk)
    except ServiceError as exc:
        raise Http404 from exc
    if request.headers.get("HX-Request"):
        return notification_menu(request)
    if request.POST.get("open") == "1" and notification.url:
        return redirect(notification.url)
    return redirect(_next(request, "/notifications/"))


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponseBase:
    service.mark_all_notifications_read(user=request.user)
    if request.headers.get("HX-Request"):
        return notification_menu(request)
    return redirect(_next(request, "/notifications/"))


@login_required
@require_POST
def notification_preferences(request: HttpRequest) -> HttpResponseBase:
    """Settings → Me: e-mail on or off per kind (a checkbox per kind; unchecked = off)."""
    choices = {kind: request.POST.get(f"email_{kind}") == "on" for kind in service.EMAIL_DEFAULTS}
    service.set_email_preferences(user=request.user, choices=choices)
    messages.success(request, "Notification settings saved.")
    return redirect("crm:settings")
