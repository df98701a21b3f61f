"""Agents: accounts, roles, availability and invitations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core import audit
from core.errors import ServiceError
from crm import sessions
from crm.models import Agent, Invitation
from tenants.db import connection
from tenants.models import Domain

User = Any  # the tenant's auth user (django.contrib.auth.User)


ROLE_RANK = {
    Agent.Role.AGENT: 1,
    Agent.Role.SUPERVISOR: 2,
    Agent.Role.ADMIN: 3,
    Agent.Role.OWNER: 4,
}


def _staff_flags(role: str) -> dict[str, bool]:
    # Owners and admins manage the tenant in Django admin (is_staff lets them through its sign-in); the
    # others work in the staff pages only. Never superusers: a superuser passes every permission check,
    # so the admin could not hold an admin back from the owner's account. What they may do there comes
    # from the role (crm.auth.RateLimitedModelBackend.has_perm).
    is_admin = role in (Agent.Role.OWNER, Agent.Role.ADMIN)
    return {"is_staff": is_admin, "is_superuser": False}


@transaction.atomic
def create_agent(*, email: str, password: str | None, role: str, name: str = "") -> Agent:
    """A tenant user with a role. Owners and admins may use the tenant's Django admin."""
    if role not in Agent.Role.values:
        raise ServiceError("invalid_role", f"'{role}' is not a role.", field="role")
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ServiceError("invalid_email", "Enter a valid email address.", field="email") from exc
    user_model = get_user_model()
    if user_model.objects.filter(username=email).exists():
        raise ServiceError(
            "duplicate_email",
            "An agent with this email exists.",
            field="email",
            status=409,
        )
    first, _, last = name.strip().partition(" ")
    user = user_model(
        username=email,
        email=email,
        first_name=first[:150],
        last_name=last[:150],
        **_staff_flags(role),
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return Agent.objects.create(user=user, role=role)


def check_can_grant(*, by_role: str | None, current: str | None, new: str) -> None:
    # Only an owner makes or unmakes an owner; nobody grants a role above their own.
    if by_role is None:
        return
    if Agent.Role.OWNER in (new, current) and by_role != Agent.Role.OWNER:
        raise ServiceError(
            "forbidden_role",
            "Only an owner can grant or remove the owner role.",
            field="role",
            status=403,
        )
    if ROLE_RANK[Agent.Role(new)] > ROLE_RANK[Agent.Role(by_role)]:
        raise ServiceError(
            "forbidden_role",
            "You cannot grant a role above your own.",
            field="role",
            status=403,
        )


@transaction.atomic
def change_agent_role(*, agent: Agent, role: str, by_role: str | None = None) -> Agent:
    if role not in Agent.Role.values:
        raise ServiceError("invalid_role", f"'{role}' is not a role.", field="role")
    check_can_grant(by_role=by_role, current=agent.role, new=role)
    # A deactivated owner cannot act for the workspace: only active owners count.
    last_owner = (
        not Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).exclude(pk=agent.pk).exists()
    )
    if agent.role == Agent.Role.OWNER and role != Agent.Role.OWNER and last_owner:
        raise ServiceError(
            "last_owner",
            "The workspace needs at least one owner.",
            field="role",
            status=409,
        )
    changed = agent.role != role
    if changed:
        audit.record("agent.role_changed", target=agent, details={"from": agent.role, "to": role})
    agent.role = role
    agent.save(update_fields=["role"])
    user = agent.user
    for flag, value in _staff_flags(role).items():
        setattr(user, flag, value)
    user.save(update_fields=["is_staff", "is_superuser"])
    if changed:
        # Open sockets joined the old role's groups: they close, and reconnect with the new role's.
        sessions.close_user_sockets(
            user_id=user.pk, code=sessions.CLOSE_ACCESS_CHANGED, reason="role_changed"
        )
    return agent


@transaction.atomic
def set_agent_active(
    *, agent: Agent, active: bool, by_role: str | None = None, by: User | None = None
) -> Agent:
    """Deactivate (or reactivate) an agent's sign-in. Deactivated users keep their history (notes,
    assignments) but their sessions stop working at once and their open sockets close."""
    # Who may grant the agent's role may also switch the agent off: only an owner touches an owner.
    check_can_grant(by_role=by_role, current=agent.role, new=agent.role)
    user = agent.user
    if not active and by is not None and by.pk == user.pk:
        raise ServiceError("cannot_deactivate_self", "You cannot deactivate yourself.", status=409)
    if not active and agent.role == Agent.Role.OWNER:
        other_owners = Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).exclude(pk=agent.pk)
        if not other_owners.exists():
            raise ServiceError("last_owner", "The workspace needs at least one owner.", status=409)
    if user.is_active == active:
        return agent
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record("agent.reactivated" if active else "agent.deactivated", target=agent)
    if not active:
        sessions.close_user_sockets(user_id=user.pk, code=sessions.CLOSE_SIGNED_OUT, reason="deactivated")
    return agent


# Apps above crm learn that an agent may have room for more work (came online, capacity raised):
# conversations' auto-assignment registers its queue fill here in AppConfig.ready(). Run on commit.
ROOM_FREED_HOOKS: list[Callable[[], Any]] = []


def _room_freed() -> None:
    for hook in ROOM_FREED_HOOKS:
        transaction.on_commit(hook)


@transaction.atomic
def set_agent_capacity(*, agent: Agent, capacity: int | None) -> Agent:
    """The most open conversations auto-assignment gives this agent (None: the workspace default)."""
    valid = capacity is None or (
        not isinstance(capacity, bool) and isinstance(capacity, int) and 0 <= capacity <= 1000
    )
    if not valid:
        raise ServiceError(
            "invalid_capacity", "Capacity must be a whole number from 0 to 1000.", field="capacity"
        )
    agent.capacity = capacity
    agent.save(update_fields=["capacity"])
    _room_freed()
    return agent


@transaction.atomic
def set_agent_availability(*, agent: Agent, availability: str) -> Agent:
    if availability not in Agent.Availability.values:
        raise ServiceError(
            "invalid_availability",
            f"'{availability}' is not an availability.",
            field="availability",
        )
    agent.availability = availability
    fields = ["availability"]
    if availability == Agent.Availability.ONLINE:
        # Coming online is a sign of life: the idle sweep counts from here.
        agent.last_seen_at = timezone.now()
        fields.append("last_seen_at")
    agent.save(update_fields=fields)
    if availability == Agent.Availability.ONLINE:
        _room_freed()
    return agent


def tenant_site() -> tuple[str, str]:
    """The current tenant's scheme and host[:port] for links sent by email (invitations, password
    resets): its primary domain with SITE_SCHEME and SITE_PORT. Never the request's Host header, which
    the client chooses (a spoofed port or forwarded host would put the token on someone else's server)."""
    schema = connection.schema_name
    host = (
        Domain.objects.filter(tenant__schema_name=schema, is_primary=True)
        .values_list("domain", flat=True)
        .first()
        or f"{schema}.{settings.BASE_DOMAIN}"
    )
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return settings.SITE_SCHEME, f"{host}{port}"


def tenant_base_url() -> str:
    scheme, host = tenant_site()
    return f"{scheme}://{host}"


def invitation_link(*, user: Any, base_url: str) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{base_url.rstrip('/')}/invitations/{uid}/{token}/"


def _send_invitation(*, invitation: Invitation, base_url: str) -> None:
    user = invitation.agent.user
    link = invitation_link(user=user, base_url=base_url)
    inviter = invitation.invited_by
    context = {
        "link": link,
        "inviter": (inviter.get_full_name() or inviter.email) if inviter else "Your team",
        "workspace": getattr(connection.tenant, "name", ""),
        "role": invitation.agent.get_role_display(),
    }
    body = render_to_string("crm/email/invitation.txt", context)
    email = user.email
    transaction.on_commit(
        lambda: send_mail(
            f"You are invited to {context['workspace']}",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [email],
        )
    )


@transaction.atomic
def invite_agent(
    *,
    email: str,
    role: str,
    invited_by: User | None,
    base_url: str | None = None,
    name: str = "",
    by_role: str | None = None,
) -> Invitation:
    """A user with no usable password and an emailed link to set one (Django's password-reset token).

    The link's base is the tenant's configured URL (tenant_base_url) unless a caller passes its own.
    """
    check_can_grant(by_role=by_role, current=None, new=role)
    agent = create_agent(email=email, password=None, role=role, name=name)
    invitation = Invitation.objects.create(agent=agent, invited_by=invited_by)
    audit.record("invitation.sent", target=agent, details={"email": agent.user.email, "role": role})
    _send_invitation(invitation=invitation, base_url=base_url or tenant_base_url())
    return invitation


@transaction.atomic
def resend_invitation(*, invitation: Invitation, base_url: str | None = None) -> Invitation:
    if invitation.accepted_at is not None:
        raise ServiceError("already_accepted", "This invitation was already accepted.", status=409)
    invitation.sent_at = timezone.now()
    invitation.save(update_fields=["sent_at"])
    audit.record("invitation.resent", target=invitation.agent, details={"email": invitation.agent.user.email})
    _send_invitation(invitation=invitation, base_url=base_url or tenant_base_url())
    return invitation


def accept_invitation(*, user: Any) -> None:
    Invitation.objects.filter(agent__user=user, accepted_at__isnull=True).update(accepted_at=timezone.now())
