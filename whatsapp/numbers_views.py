"""Settings → WhatsApp numbers (/settings/whatsapp/): connect a number (Embedded Signup or by hand with a
token), see each number's health, reconnect, refresh, disable, check its webhooks; an owner may give a
verified number its own app secret. Owners and admins; everyone else gets the 403 page, as on the other
settings pages. Thin: forms parse, whatsapp.services write, the template renders."""

from __future__ import annotations

import re
from typing import Any

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from conversations.models import Channel
from crm.models import Agent
from crm.views import member_required, role_in
from whatsapp.client import GraphError
from whatsapp.forms import AppSecretForm, EmbeddedSignupForm, ManualConnectForm
from whatsapp.models import BusinessAccount
from whatsapp.services import ChannelError, connect_channel, sync_templates
from whatsapp.services.embedded_signup import complete_embedded_signup, embedded_signup_enabled
from whatsapp.services.numbers import (
    check_webhook_delivery,
    disable_number,
    refresh_number,
    set_number_app_secret,
    verified_numbers,
    webhook_url,
)

PAGE = "whatsapp/numbers/page.html"
SDK_URL = "https://connect.facebook.net/en_US/sdk.js"
# Meta's SDK loads from connect.facebook.net, talks to facebook.com and opens the signup in its dialog.
META_CSP = {
    "script-src": ["https://connect.facebook.net"],
    "connect-src": ["https://connect.facebook.net", "https://www.facebook.com", "https://graph.facebook.com"],
    "frame-src": ["https://www.facebook.com", "https://web.facebook.com", "https://business.facebook.com"],
}
# Where a ChannelError of the manual form is shown.
FIELD_OF_ERROR = {
    "token_invalid": "access_token",
    "missing_token": "access_token",
    "invalid_ids": "phone_number_id",
    "number_not_verified": "phone_number_id",
    "number_taken": "phone_number_id",
}


def _numbers() -> list[Channel]:
    numbers = list(Channel.objects.filter(provider=Channel.Provider.CLOUD_API).select_related("health"))
    verified = verified_numbers(phone_number_ids=[n.phone_number_id for n in numbers])
    for number in numbers:
        number.meta_verified = number.phone_number_id in verified  # type: ignore[attr-defined]
        number.health_row = getattr(number, "health", None)  # type: ignore[attr-defined]
    return numbers


def _graph_version() -> str:
    found = re.search(r"/(v\d+\.\d+)", settings.WHATSAPP_GRAPH_URL)
    return found.group(1) if found else "v21.0"


def _render(
    request: HttpRequest, *, form: ManualConnectForm | None = None, status: int = 200, **extra: Any
) -> HttpResponse:
    numbers = _numbers()
    waba_ids = sorted({n.waba_id for n in numbers})
    accounts = {a.waba_id: a for a in BusinessAccount.objects.filter(waba_id__in=waba_ids)}
    context = {
        "numbers": numbers,
        "accounts": [(waba_id, accounts.get(waba_id)) for waba_id in waba_ids],
        "form": form or ManualConnectForm(),
        "signup_enabled": embedded_signup_enabled(),
        "meta_app_id": settings.META_APP_ID,
        "meta_config_id": settings.META_EMBEDDED_SIGNUP_CONFIG_ID,
        "sdk_url": SDK_URL,
        "graph_version": _graph_version(),
        "webhook_url": webhook_url(),
        "verify_token": settings.WHATSAPP_VERIFY_TOKEN or "",
        "is_owner": role_in(request) == Agent.Role.OWNER,
        "app_secret_form": AppSecretForm(),
        **extra,
    }
    return render(request, PAGE, context, status=status)


@require_GET
@member_required("admin")
@csp_update(META_CSP)  # type: ignore[misc]
def numbers_page(request: HttpRequest) -> HttpResponse:
    form = None
    reconnect = None
    if "reconnect" in request.GET:
        reconnect = get_object_or_404(Channel, pk=_int(request.GET["reconnect"]))
        form = ManualConnectForm(
            initial={
                "phone_number_id": reconnect.phone_number_id,
                "waba_id": reconnect.waba_id,
                "name": reconnect.name,
                "reconnect": reconnect.pk,
            }
        )
    return _render(request, form=form, reconnect=reconnect)


def _int(value: str) -> int:
    return int(value) if value.isdigit() and len(value) < 12 else 0


@require_POST
@member_required("admin")
@csp_update(META_CSP)  # type: ignore[misc]
def connect_manually(request: HttpRequest) -> HttpResponse:
    form = ManualConnectForm(request.POST)
    if not form.is_valid():
        return _render(request, form=form, status=400)
    data = form.cleaned_data
    existing = Channel.objects.filter(phone_number_id=data["phone_number_id"].strip()).first()
    if existing is not None and existing.pk != data.get("reconnect"):
        # Connecting anew over a number of this workspace would silently replace its token: that is
        # what Reconnect is for, and it says so.
        form.add_error(
            "phone_number_id",
            f"This number is already connected here ({existing}): use its Reconnect action. "
            "[already_connected]",
        )
        return _render(request, form=form, status=409)
    try:
        channel = connect_channel(
            tenant=request.tenant,  # type: ignore[attr-defined]
            phone_number_id=data["phone_number_id"],
            waba_id=data["waba_id"],
            access_token=data["access_token"],
            name=data.get("name") or "",
            by_role=role_in(request),
        )
    except ChannelError as exc:
        form.add_error(FIELD_OF_ERROR.get(exc.code), f"{exc.message} [{exc.code}]")
        return _render(request, form=form, status=exc.status)
    notes = []
    try:
        refresh_number(channel=channel)
    except ChannelError:
        notes.append("its details could not be read yet (use Refresh)")
    try:
        count = sync_templates(channel=channel)
        notes.append(f"{count} template{'s' if count != 1 else ''} synced")
    except GraphError:
        notes.append("templates could not be synced now (the scheduled sync retries)")
    messages.success(
        request,
        f"Connected {channel}: {', '.join(notes)}. Now paste the webhook URL and verify token below into "
        "your Meta app, then send a test event.",
    )
    return redirect(f"{reverse('whatsapp-numbers')}?connected={channel.pk}#number-{channel.pk}")


@require_POST
@member_required("admin")
def embedded_signup_complete(request: HttpRequest) -> JsonResponse:
    """The browser's POST once Meta's signup finished: JSON in and out (the page's script)."""
    form = EmbeddedSignupForm(request.POST)
    if not form.is_valid():
        return _json_error("invalid_request", "The signup sent no code, phone number id or account id.", 400)
    try:
        result = complete_embedded_signup(
            tenant=request.tenant,  # type: ignore[attr-defined]
            code=form.cleaned_data["code"],
            phone_number_id=form.cleaned_data["phone_number_id"],
            waba_id=form.cleaned_data["waba_id"],
            by_role=role_in(request),
        )
    except ChannelError as exc:
        return _json_error(exc.code, exc.message, exc.status)
    synced = (
        "templates not synced yet" if result.templates is None else f"{result.templates} templates synced"
    )
    message = f"Connected {result.channel} with Embedded Signup: subscribed, registered, {synced}."
    messages.success(request, message)
    return JsonResponse(
        {
            "ok": True,
            "number": {"id": result.channel.pk, "phone_number_id": result.channel.phone_number_id},
            "templates": result.templates,
            "message": message,
            "redirect": f"{reverse('whatsapp-numbers')}#number-{result.channel.pk}",
        }
    )


def _json_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": None}}, status=status)


@require_POST
@member_required("admin")
def number_action(request: HttpRequest, pk: int, action: str) -> HttpResponseBase:
    channel = get_object_or_404(Channel, pk=pk, provider=Channel.Provider.CLOUD_API)
    back = f"{reverse('whatsapp-numbers')}#number-{channel.pk}"
    try:
        if action == "refresh":
            health = refresh_number(channel=channel)
            messages.success(
                request, f"{channel}: quality {health.quality_rating or 'unknown'}, read from Meta now."
            )
        elif action == "disable":
            disable_number(channel=channel, by_label=request.user.get_username())
            messages.success(
                request, f"{channel} is disabled: nothing is sent from it until it is reconnected."
            )
        elif action == "test-event":
            _test_event(request, channel)
        elif action == "app-secret":
            form = AppSecretForm(request.POST)
            secret = form.cleaned_data["app_secret"] if form.is_valid() else ""
            set_number_app_secret(channel=channel, app_secret=secret, by_role=role_in(request))
            messages.success(request, f"{channel} now verifies its webhooks with your app's secret.")
        else:
            return HttpResponse(status=404)
    except ChannelError as exc:
        if exc.status == 403:
            return HttpResponse(exc.message, status=403, content_type="text/plain")
        messages.error(request, f"{channel}: {exc.message} [{exc.code}]")
    return redirect(back)


def _test_event(request: HttpRequest, channel: Channel) -> None:
    check = check_webhook_delivery(channel=channel)
    if check.received_at is not None:
        when = timezone.localtime(check.received_at).strftime("%Y-%m-%d %H:%M:%S")
        what = "The test event arrived" if check.sent else "The latest webhook for this number arrived"
        messages.success(request, f"{channel}: {what} at {when}: webhooks reach this app.")
    elif check.sent:
        messages.error(
            request, f"{channel}: a test event was sent but has not arrived yet: check the webhook URL."
        )
    elif settings.WHATSAPP_SANDBOX_TEST_EVENTS:
        messages.error(
            request,
            f"{channel}: the sandbox has no webhook URL to post to (its --webhook-url), so nothing arrived.",
        )
    else:
        messages.error(
            request,
            f"{channel}: no webhook for this number in the last 7 days. In your Meta app's dashboard "
            "(WhatsApp → Configuration), check the callback URL and verify token below, subscribe the "
            "messages field and press Test, or send the number a message; then check again.",
        )
