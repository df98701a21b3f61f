"""Numbers: verified with Meta, connected, their credentials and status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Channel
from core import audit
from core.errors import ServiceError
from crm.models import Agent
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.services import adopt_phone_region
from tenants.db import connection
from tenants.models import NumberRoute, Tenant
from whatsapp import crypto, parsing
from whatsapp.client import GraphClient, GraphError, RetryClass
from whatsapp.services.webhooks import forget_webhook_secrets

log = structlog.get_logger("whatsapp")


class ChannelError(ServiceError):
    """Connecting or changing a number was refused; the status follows the code (bad ids or a missing
    token 400, the owner's decision 403, a number another workspace has 409, Meta refusing the token or
    the number 422, Meta unreachable 503)."""

    STATUS = {
        "owner_only": 403,
        "number_taken": 409,
        "token_invalid": 422,
        "number_not_verified": 422,
        "graph_unavailable": 503,
    }

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status", self.STATUS.get(code, 400))
        super().__init__(code, message, **kwargs)


@dataclass(frozen=True)
class VerifiedNumber:
    """What the Graph API confirmed with the tenant's token: the number is one of the account's."""

    phone_number_id: str
    waba_id: str
    display_phone: str = ""
    verified_name: str = ""


def verify_number(
    *,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    tenant: Tenant | None = None,
) -> VerifiedNumber:
    """Before a number is routed to a tenant (its webhooks, its customers), Meta must confirm with the
    token the tenant gave that the token may read the number (GET /{phone_number_id}) and that the number
    is one of the account's (GET /{waba_id}/phone_numbers): anyone could type someone else's id. With
    `tenant`, a number routed to another tenant is then refused (number_taken): only someone who has
    shown the number is theirs learns that. Raises ChannelError: invalid_ids, missing_token,
    token_invalid, number_not_verified, graph_unavailable, number_taken."""
    phone_number_id, waba_id, access_token = (
        phone_number_id.strip(),
        waba_id.strip(),
        access_token.strip(),
    )
    if not parsing.ID_RE.match(phone_number_id) or not parsing.ID_RE.match(waba_id):
        raise ChannelError("invalid_ids", "phone_number_id and waba_id are Meta's numeric ids.")
    if not access_token:
        raise ChannelError("missing_token", "An access token is required.")
    graph = GraphClient(access_token=access_token)
    try:
        number = graph.get_phone_number(phone_number_id=phone_number_id)
        listed = any(n.id == phone_number_id for n in graph.iter_phone_numbers(waba_id=waba_id))
    except GraphError as error:
        raise _verification_error(error, phone_number_id, waba_id) from error
    if number.id != phone_number_id or not listed:
        raise ChannelError(
            "number_not_verified",
            f"Meta does not list the number {phone_number_id} among the numbers of the WhatsApp Business "
            f"Account {waba_id}.",
        )
    if tenant is not None and _routed_elsewhere(phone_number_id, tenant):
        raise _number_taken(phone_number_id)
    return VerifiedNumber(
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone=number.display_phone_number[:32],
        verified_name=number.verified_name[:100],
    )


def _verification_error(error: GraphError, phone_number_id: str, waba_id: str) -> ChannelError:
    if error.retry_class == RetryClass.AUTH:
        return ChannelError(
            "token_invalid",
            f"Meta refused the access token ({error.code or ''} {error.title}). Use a system-user token "
            "with the whatsapp_business_management permission for this account.",
        )
    if error.retry_class in (RetryClass.RETRY, RetryClass.UNCERTAIN):
        return ChannelError(
            "graph_unavailable",
            "Meta could not be reached to verify the number; try again in a moment.",
        )
    return ChannelError(
        "number_not_verified",
        f"Meta does not confirm that this token may manage the number {phone_number_id} of the WhatsApp "
        f"Business Account {waba_id}.",
    )


def _routed_elsewhere(phone_number_id: str, tenant: Tenant) -> bool:
    return NumberRoute.objects.filter(phone_number_id=phone_number_id).exclude(tenant=tenant).exists()


def _number_taken(phone_number_id: str) -> ChannelError:
    # Nothing about the other workspace: the platform operator resolves it (public admin, number routes).
    return ChannelError(
        "number_taken",
        f"The number {phone_number_id} is connected to another workspace. Contact the platform operator, "
        "who can release it once you have shown it is yours.",
    )


def _check_may_set_app_secret(by_role: str | None) -> None:
    # A number's own secret verifies webhooks for it: the workspace owner's decision alone. None is the
    # platform operator (management commands).
    if by_role is not None and by_role != Agent.Role.OWNER:
        raise ChannelError("owner_only", "Only the workspace owner can set a number's app secret.")


def connect_channel(
    *,
    tenant: Tenant,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    display_phone: str = "",
    app_secret: str = "",
    name: str = "",
    throughput_cap: int | None = None,
    by_role: str | None = None,
    verified: VerifiedNumber | None = None,
) -> Channel:
    """Add (or re-authorise) a number of the tenant and route its webhooks to the tenant, once Meta has
    confirmed it is the account's (verify_number; `verified` is its result when the caller, the admin
    form, already asked). `by_role`: the acting user's role (None: the platform operator); only an
    owner gives a number its own app secret. An empty app_secret keeps the stored one."""
    phone_number_id, waba_id = phone_number_id.strip(), waba_id.strip()
    if app_secret:
        _check_may_set_app_secret(by_role)
    if verified is None or (verified.phone_number_id, verified.waba_id) != (
        phone_number_id,
        waba_id,
    ):
        # Outside the transaction: no row lock is held while Meta answers.
        verified = verify_number(
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            access_token=access_token,
            tenant=tenant,
        )
    channel = _store_channel(
        tenant=tenant,
        verified=verified,
        access_token=access_token.strip(),
        display_phone=display_phone,
        app_secret=app_secret,
        name=name,
        throughput_cap=throughput_cap,
    )
    forget_webhook_secrets()
    return channel


@transaction.atomic
def _store_channel(
    *,
    tenant: Tenant,
    verified: VerifiedNumber,
    access_token: str,
    display_phone: str,
    app_secret: str,
    name: str,
    throughput_cap: int | None,
) -> Channel:
    phone_number_id = verified.phone_number_id
    route = NumberRoute.objects.select_for_update().filter(phone_number_id=phone_number_id).first()
    if route is not None and route.tenant_id != tenant.pk:
        raise _number_taken(phone_number_id)
    display_phone = display_phone or verified.display_phone
    if display_phone:
        # Shown to staff only; Meta's test numbers (555 ranges) are not "valid" to phonenumbers.
        try:
            display_phone = normalize_phone(display_phone)
        except InvalidPhoneNumber:
            display_phone = display_phone.strip()[:32]
    route_fields: dict[str, Any] = {
        "tenant": tenant,
        "waba_id": verified.waba_id,
        "verified_at": timezone.now(),
    }
    if app_secret:
        route_fields["app_secret_encrypted"] = crypto.encrypt(app_secret)
    NumberRoute.objects.update_or_create(phone_number_id=phone_number_id, defaults=route_fields)
    with schema_context(tenant.schema_name):
        defaults: dict[str, Any] = {
            "waba_id": verified.waba_id,
            "access_token_encrypted": crypto.encrypt(access_token),
            "status": Channel.Status.ACTIVE,
            "status_reason": "",
        }
        if app_secret:
            defaults["app_secret_encrypted"] = route_fields["app_secret_encrypted"]
        if display_phone:
            defaults["display_phone"] = display_phone
        if name or verified.verified_name:
            defaults["name"] = name or verified.verified_name
        if throughput_cap:
            defaults["throughput_cap"] = throughput_cap
        channel, created = Channel.objects.update_or_create(
            phone_number_id=phone_number_id, defaults=defaults
        )
        if created and display_phone:
            adopt_phone_region(tenant=tenant, phone=display_phone)
        audit.record(
            "number.connected" if created else "number.reconnected",
            target=channel,
            details={"phone_number_id": phone_number_id},
        )
    return channel


def number_is_verified(*, phone_number_id: str) -> bool:
    """Whether Meta confirmed this number for the current tenant (its route, in the public schema)."""
    return NumberRoute.objects.filter(
        phone_number_id=phone_number_id,
        tenant__schema_name=connection.schema_name,
        verified_at__isnull=False,
    ).exists()


def update_channel_credentials(
    *,
    channel: Channel,
    access_token: str = "",
    app_secret: str | None = None,
    by_role: str | None = None,
) -> Channel:
    """From the tenant admin: a new token re-activates a number that needed re-authorisation. A new app
    secret (`by_role`: only an owner; None is the platform operator) only for a number Meta confirmed
    as the tenant's: the secret then verifies that number's webhooks, and only them."""
    if app_secret is not None:
        _check_may_set_app_secret(by_role)
        if not number_is_verified(phone_number_id=channel.phone_number_id):
            raise ChannelError(
                "number_not_verified",
                "Connect the number again (Meta confirms it is yours) before giving it its own app secret.",
            )
    fields = []
    if access_token.strip():
        channel.access_token_encrypted = crypto.encrypt(access_token.strip())
        channel.status = Channel.Status.ACTIVE
        channel.status_reason = ""
        fields += ["access_token_encrypted", "status", "status_reason"]
    if app_secret is not None:
        channel.app_secret_encrypted = crypto.encrypt(app_secret)
        fields.append("app_secret_encrypted")
        NumberRoute.objects.filter(phone_number_id=channel.phone_number_id).update(
            app_secret_encrypted=channel.app_secret_encrypted
        )
        forget_webhook_secrets()
        audit.record(
            "number.app_secret_changed",
            target=channel,
            details={"phone_number_id": channel.phone_number_id, "cleared": not app_secret},
        )
    if fields:
        channel.save(update_fields=fields)
    return channel


def set_channel_status(*, channel: Channel, status: str, reason: str = "") -> None:
    """Auth errors → needs re-authorisation; account-level errors → disabled (and an alert in the logs).
    The number's owners get one e-mail when it turns to needing re-authorisation: the conditional UPDATE
    lets exactly one of several failing sends make the transition (the others see it done)."""
    changed = (
        Channel.objects.filter(pk=channel.pk)
        .exclude(status=status)
        .update(status=status, status_reason=reason[:300])
    )
    if not changed:
        Channel.objects.filter(pk=channel.pk).update(status_reason=reason[:300])
    channel.status, channel.status_reason = status, reason[:300]
    if changed and status == Channel.Status.NEEDS_REAUTH:
        from whatsapp.services.notifications import alert_needs_reauth

        alert_needs_reauth(channel=channel, reason=reason)
    level = log.error if status == Channel.Status.DISABLED else log.warning
    level(
        "whatsapp_channel_status",
        phone_number_id=channel.phone_number_id,
        status=status,
        reason=reason,
    )
