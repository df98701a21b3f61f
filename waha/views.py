"""Settings → WhatsApp numbers → Link with QR code (/settings/whatsapp/waha/): link a number through a WAHA
session, watch its QR code live until the phone links it, then its status; Reconnect, Stop, Log out,
Remove. Owners and admins (agents get the 403 page, as on the other settings pages). Thin: the form
parses, waha.sessions writes and talks to WAHA, the templates render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.views import member_required
from waha import sessions
from waha.forms import LinkForm
from waha.models import WahaSession

PAGE = "waha/page.html"
SESSION_PAGE = "waha/session.html"
LIVE = "waha/_live.html"
ACTIONS = ("reconnect", "stop", "logout", "remove")


def _session(pk: int) -> WahaSession:
    return get_object_or_404(WahaSession.objects.select_related("channel"), channel_id=pk)


def _render_page(request: HttpRequest, form: LinkForm, status: int = 200) -> HttpResponse:
    numbers = WahaSession.objects.select_related("channel").order_by("id")
    return render(request, PAGE, {"form": form, "numbers": numbers}, status=status)


@require_http_methods(["GET", "POST"])
@member_required("admin")
def link_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render_page(request, LinkForm())
    form = LinkForm(request.POST)
    if not form.is_valid():
        return _render_page(request, form, status=400)
    data = form.cleaned_data
    try:
        connected = sessions.connect(
            tenant=request.tenant,  # type: ignore[attr-defined]
            server_url=data["server_url"],
            api_key=data["api_key"],
            session=data["session"],
            name=data["name"],
            actor=request.user,
        )
    except sessions.WahaSessionError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, f"{exc.message} [{exc.code}]")
        return _render_page(request, form, status=exc.status)
    # Rendered, not redirected: the webhook key is on this one answer and stored nowhere readable.
    return render(
        request,
        SESSION_PAGE,
        _session_context(connected.waha_session, webhook_key=connected.webhook_key),
        status=201,
    )


def _session_context(waha_session: WahaSession, webhook_key: str = "") -> dict[str, object]:
    return {
        "waha_session": waha_session,
        "channel": waha_session.channel,
        "webhook_url": sessions.webhook_url_for(waha_session.webhook_id),
        "webhook_key": webhook_key,
        "live": _live_context(waha_session, qr_svg="", error="", first=True),
    }


def _live_context(
    waha_session: WahaSession, *, qr_svg: str, error: str, first: bool = False
) -> dict[str, object]:
    # Polling stops once there is nothing left to wait for: linked, or stopped by someone.
    polling = waha_session.status not in (WahaSession.Status.WORKING, WahaSession.Status.STOPPED)
    return {
        "waha_session": waha_session,
        "channel": waha_session.channel,
        "qr_svg": qr_svg,
        "error": error,
        "polling": polling or first,
        "first": first,
    }


@require_GET
@member_required("admin")
def session_page(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, SESSION_PAGE, _session_context(_session(pk)))


@require_GET
@member_required("admin")
def session_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the page (htmx polls it every few seconds): status, QR code, linked number."""
    waha_session = _session(pk)
    state = sessions.live_state(waha_session=waha_session)
    waha_session.channel.refresh_from_db()
    return render(request, LIVE, _live_context(state.waha_session, qr_svg=state.qr_svg, error=state.error))


@require_POST
@member_required("admin")
def session_action(request: HttpRequest, pk: int, action: str) -> HttpResponseBase:
    if action not in ACTIONS:
        return HttpResponse(status=404)
    waha_session = _session(pk)
    channel = waha_session.channel
    try:
        if action == "reconnect":
            sessions.reconnect(waha_session=waha_session, actor=request.user)
            messages.success(request, f"{channel}: the WhatsApp Web session is starting again.")
        elif action == "stop":
            sessions.stop(waha_session=waha_session, actor=request.user)
            messages.success(request, f"{channel}: stopped. Reconnect starts it again, still linked.")
        elif action == "logout":
            sessions.logout(waha_session=waha_session, actor=request.user)
            messages.success(
                request,
                f"{channel}: logged out. Its conversations stay; scan a new QR code to link it again.",
            )
        else:
            removed = sessions.remove(waha_session=waha_session, actor=request.user)
            note = (
                ""
                if removed.deleted_on_server
                else f" (not deleted on the WAHA server: {removed.server_error})"
            )
            messages.success(request, f"{channel} is removed; its conversations stay{note}.")
            return redirect("waha-link")
    except sessions.WahaSessionError as exc:
        messages.error(request, f"{channel}: {exc.message} [{exc.code}]")
    return redirect("waha-session", pk=channel.pk)
