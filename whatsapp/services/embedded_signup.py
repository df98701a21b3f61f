"""Embedded Signup (v4): Meta's JavaScript SDK flow on the numbers page hands the browser a code and the
ids of the number and account the customer shared; the server does the rest with the Graph API:

code → business token (GET /oauth/access_token, with the platform app's id and secret) → the number is
verified as the account's with that token (verify_number: GET /{phone_number_id} and
GET /{waba_id}/phone_numbers) → its details and the account are read → the app is subscribed to the
account's webhooks (POST /{waba_id}/subscribed_apps) → the number is registered for the Cloud API
(POST /{phone_number_id}/register, with a new two-step PIN) → the number is connected
(connect_channel) → its account's templates are synced at once.

Nothing is stored until Meta has confirmed the number and accepted the subscription and registration: a
failure half-way leaves no number behind (re-running the signup is safe: each step is idempotent at
Meta's end)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import structlog
from django.conf import settings

from conversations.models import Channel
from tenants.models import Tenant
from whatsapp import crypto, parsing
from whatsapp.client import GraphClient, GraphError, RetryClass
from whatsapp.models import NumberHealth
from whatsapp.services.channels import ChannelError, connect_channel, verify_number
from whatsapp.services.numbers import store_number_details
from whatsapp.services.templates import sync_templates

log = structlog.get_logger("whatsapp")

MAX_CODE_LENGTH = 2048


def embedded_signup_enabled() -> bool:
    return bool(settings.META_APP_ID and settings.META_EMBEDDED_SIGNUP_CONFIG_ID)


@dataclass
class SignupResult:
    channel: Channel
    templates: int | None  # None: the sync failed (the scheduled sync retries)
    notes: list[str] = field(default_factory=list)


def _graph_failure(error: GraphError, code: str, what: str) -> ChannelError:
    if error.retry_class in (RetryClass.RETRY, RetryClass.UNCERTAIN) and error.code is None:
        return ChannelError(
            "graph_unavailable", f"Meta could not be reached to {what}; try again in a moment."
        )
    return ChannelError(
        code, f"Meta refused to {what} ({error.code or ''} {error.title}).".replace("( ", "("), status=422
    )


def complete_embedded_signup(
    *,
    tenant: Tenant,
    code: str,
    phone_number_id: str,
    waba_id: str,
    by_role: str | None,
) -> SignupResult:
    """Raises ChannelError: signup_not_configured, invalid_ids, code_invalid, token_invalid,
    number_not_verified, number_taken, subscription_failed, registration_failed, graph_unavailable."""
    if not embedded_signup_enabled():
        raise ChannelError(
            "signup_not_configured",
            "Embedded Signup is not set up on this platform (META_APP_ID, META_EMBEDDED_SIGNUP_CONFIG_ID).",
            status=404,
        )
    code, phone_number_id, waba_id = code.strip(), phone_number_id.strip(), waba_id.strip()
    if not code or len(code) > MAX_CODE_LENGTH:
        raise ChannelError("code_invalid", "The signup returned no usable code: start it again.")
    if not parsing.ID_RE.match(phone_number_id) or not parsing.ID_RE.match(waba_id):
        raise ChannelError(
            "invalid_ids", "The signup returned no phone number or account id: start it again."
        )
    try:
        token = GraphClient(access_token="").exchange_signup_code(
            code=code, app_id=settings.META_APP_ID, app_secret=settings.WHATSAPP_APP_SECRET or ""
        )
    except GraphError as error:
        if error.code is None and error.retry_class == RetryClass.RETRY:
            raise ChannelError(
                "graph_unavailable", "Meta could not be reached to finish the signup; try again."
            ) from error
        raise ChannelError(
            "code_invalid",
            f"Meta did not accept the signup's code ({error.code or ''} {error.title}). Codes are single-use "
            "and expire after a few minutes: start the signup again.",
            status=422,
        ) from error
    verified = verify_number(
        phone_number_id=phone_number_id, waba_id=waba_id, access_token=token, tenant=tenant
    )
    graph = GraphClient(access_token=token)
    pin = f"{secrets.randbelow(10**6):06d}"
    try:
        details = graph.get_number_details(phone_number_id=phone_number_id)
        account = graph.get_account(waba_id=waba_id)
    except GraphError as error:
        raise _graph_failure(error, "number_not_verified", "read the number") from error
    try:
        graph.subscribe_app(waba_id=waba_id)
    except GraphError as error:
        raise _graph_failure(
            error, "subscription_failed", "subscribe the app to the account's webhooks"
        ) from error
    try:
        graph.register_number(phone_number_id=phone_number_id, pin=pin)
    except GraphError as error:
        raise _graph_failure(error, "registration_failed", "register the number for the Cloud API") from error
    channel = connect_channel(
        tenant=tenant,
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        access_token=token,
        by_role=by_role,
        verified=verified,
    )
    store_number_details(channel=channel, details=details, account_name=str(account.get("name") or ""))
    NumberHealth.objects.filter(channel=channel).update(two_step_pin_encrypted=crypto.encrypt(pin))
    result = SignupResult(channel=channel, templates=None)
    try:
        result.templates = sync_templates(channel=channel)
    except GraphError as error:
        log.warning("whatsapp_signup_template_sync_failed", phone_number_id=phone_number_id, code=error.code)
        result.notes.append("Templates could not be synced now; the scheduled sync will fetch them.")
    return result
