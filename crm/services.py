"""Writes for the CRM. Views, the API, admin, commands and jobs all come through here."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Max, Model, Q, QuerySet
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core import csvsafe
from crm import sessions
from crm.errors import ServiceError
from crm.models import (
    Agent,
    ApiKey,
    AttributeDefinition,
    Company,
    Contact,
    ContactImport,
    Deal,
    DealStageChange,
    ImportRejection,
    Invitation,
    Note,
    Pipeline,
    Stage,
    Tag,
    Task,
    Team,
)
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.selectors import default_phone_region
from tenants.db import connection
from tenants.models import Domain

User = Any  # the tenant's auth user (django.contrib.auth.User)

ROLE_RANK = {Agent.Role.AGENT: 1, Agent.Role.SUPERVISOR: 2, Agent.Role.ADMIN: 3, Agent.Role.OWNER: 4}


# ---------------------------------------------------------------------------------------------------
# Agents, roles, teams, invitations
# ---------------------------------------------------------------------------------------------------


def _excluding(queryset: QuerySet[Any], obj: Model | None) -> QuerySet[Any]:
    return queryset.exclude(pk=obj.pk) if obj is not None and obj.pk else queryset


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
            "duplicate_email", "An agent with this email exists.", field="email", status_code=409
        )
    first, _, last = name.strip().partition(" ")
    user = user_model(
        username=email, email=email, first_name=first[:150], last_name=last[:150], **_staff_flags(role)
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return Agent.objects.create(user=user, role=role)


def _check_can_grant(*, by_role: str | None, current: str | None, new: str) -> None:
    # Only an owner makes or unmakes an owner; nobody grants a role above their own.
    if by_role is None:
        return
    if Agent.Role.OWNER in (new, current) and by_role != Agent.Role.OWNER:
        raise ServiceError(
            "forbidden_role",
            "Only an owner can grant or remove the owner role.",
            field="role",
            status_code=403,
        )
    if ROLE_RANK[Agent.Role(new)] > ROLE_RANK[Agent.Role(by_role)]:
        raise ServiceError(
            "forbidden_role", "You cannot grant a role above your own.", field="role", status_code=403
        )


@transaction.atomic
def change_agent_role(*, agent: Agent, role: str, by_role: str | None = None) -> Agent:
    if role not in Agent.Role.values:
        raise ServiceError("invalid_role", f"'{role}' is not a role.", field="role")
    _check_can_grant(by_role=by_role, current=agent.role, new=role)
    # A deactivated owner cannot act for the workspace: only active owners count.
    last_owner = (
        not Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).exclude(pk=agent.pk).exists()
    )
    if agent.role == Agent.Role.OWNER and role != Agent.Role.OWNER and last_owner:
        raise ServiceError(
            "last_owner", "The workspace needs at least one owner.", field="role", status_code=409
        )
    changed = agent.role != role
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
    _check_can_grant(by_role=by_role, current=agent.role, new=agent.role)
    user = agent.user
    if not active and by is not None and by.pk == user.pk:
        raise ServiceError("cannot_deactivate_self", "You cannot deactivate yourself.", status_code=409)
    if not active and agent.role == Agent.Role.OWNER:
        other_owners = Agent.objects.filter(role=Agent.Role.OWNER, user__is_active=True).exclude(pk=agent.pk)
        if not other_owners.exists():
            raise ServiceError("last_owner", "The workspace needs at least one owner.", status_code=409)
    if user.is_active == active:
        return agent
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        sessions.close_user_sockets(user_id=user.pk, code=sessions.CLOSE_SIGNED_OUT, reason="deactivated")
    return agent


def set_agent_availability(*, agent: Agent, availability: str) -> Agent:
    if availability not in Agent.Availability.values:
        raise ServiceError(
            "invalid_availability", f"'{availability}' is not an availability.", field="availability"
        )
    agent.availability = availability
    agent.save(update_fields=["availability"])
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
            f"You are invited to {context['workspace']}", body, settings.DEFAULT_FROM_EMAIL, [email]
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
    _check_can_grant(by_role=by_role, current=None, new=role)
    agent = create_agent(email=email, password=None, role=role, name=name)
    invitation = Invitation.objects.create(agent=agent, invited_by=invited_by)
    _send_invitation(invitation=invitation, base_url=base_url or tenant_base_url())
    return invitation


@transaction.atomic
def resend_invitation(*, invitation: Invitation, base_url: str | None = None) -> Invitation:
    if invitation.accepted_at is not None:
        raise ServiceError("already_accepted", "This invitation was already accepted.", status_code=409)
    invitation.sent_at = timezone.now()
    invitation.save(update_fields=["sent_at"])
    _send_invitation(invitation=invitation, base_url=base_url or tenant_base_url())
    return invitation


def accept_invitation(*, user: Any) -> None:
    Invitation.objects.filter(agent__user=user, accepted_at__isnull=True).update(accepted_at=timezone.now())


@transaction.atomic
def save_team(
    *, team: Team | None = None, name: str, description: str = "", member_ids: Iterable[int] | None = None
) -> Team:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A team needs a name.", field="name")
    if _excluding(Team.objects.filter(name__iexact=name), team).exists():
        raise ServiceError("duplicate_name", "A team with this name exists.", field="name", status_code=409)
    team = team or Team()
    team.name = name
    team.description = description
    team.save()
    if member_ids is not None:
        ids = set(member_ids)
        agents = list(Agent.objects.filter(pk__in=ids))
        if len(agents) != len(ids):
            raise ServiceError(
                "unknown_agent", "Some members are not agents of this workspace.", field="members"
            )
        before = set(team.members.values_list("user_id", flat=True))
        team.members.set(agents)
        # Sockets joined their teams' groups: whoever joined or left this team reconnects with the right
        # ones at once (not at the consumer's next periodic check), so a removed member hears no more of
        # the team's conversations.
        for user_id in before ^ {a.user_id for a in agents}:
            sessions.close_user_sockets(
                user_id=user_id, code=sessions.CLOSE_ACCESS_CHANGED, reason="teams_changed"
            )
    return team


# ---------------------------------------------------------------------------------------------------
# Tags, companies, attribute definitions
# ---------------------------------------------------------------------------------------------------


def save_tag(*, tag: Tag | None = None, name: str, color: str = "#6b7280") -> Tag:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A tag needs a name.", field="name")
    if _excluding(Tag.objects.filter(name__iexact=name), tag).exists():
        raise ServiceError("duplicate_name", "A tag with this name exists.", field="name", status_code=409)
    tag = tag or Tag()
    tag.name = name
    tag.color = color
    tag.save()
    return tag


def tags_by_name(names: Iterable[str]) -> list[Tag]:
    """Existing tags are reused case-insensitively; new ones are created."""
    wanted = list(dict.fromkeys(n.strip()[:50] for n in names if n and n.strip()))
    found: dict[str, Tag] = {
        t.name.lower(): t
        for t in Tag.objects.annotate(lname=Lower("name")).filter(lname__in=[n.lower() for n in wanted])
    }
    result = []
    for name in wanted:
        tag = found.get(name.lower())
        if tag is None:
            tag = found[name.lower()] = Tag.objects.create(name=name)
        result.append(tag)
    return result


def _clean_domain(domain: str) -> str:
    domain = domain.strip().lower()
    for prefix in ("https://", "http://", "www."):
        domain = domain.removeprefix(prefix)
    return domain.split("/")[0]


@transaction.atomic
def save_company(*, company: Company | None = None, name: str, domain: str = "") -> Company:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A company needs a name.", field="name")
    domain = _clean_domain(domain)
    if domain and _excluding(Company.objects.filter(domain__iexact=domain), company).exists():
        raise ServiceError(
            "duplicate_domain", "A company with this domain exists.", field="domain", status_code=409
        )
    company = company or Company()
    company.name = name
    company.domain = domain
    company.save()
    return company


def save_attribute_definition(
    *,
    definition: AttributeDefinition | None = None,
    key: str,
    label: str,
    type: str,
    choices: list[str] | None = None,
    required: bool = False,
    position: int = 0,
) -> AttributeDefinition:
    if type not in AttributeDefinition.Type.values:
        raise ServiceError("invalid_type", f"'{type}' is not an attribute type.", field="type")
    choices = [str(c).strip() for c in (choices or []) if str(c).strip()]
    if type == AttributeDefinition.Type.CHOICE and not choices:
        raise ServiceError(
            "missing_choices", "A choice attribute needs at least one choice.", field="choices"
        )
    if _excluding(AttributeDefinition.objects.filter(key=key), definition).exists():
        raise ServiceError(
            "duplicate_key", "An attribute with this key exists.", field="key", status_code=409
        )
    definition = definition or AttributeDefinition()
    definition.key, definition.label, definition.type = key, label.strip() or key, type
    definition.choices = choices if type == AttributeDefinition.Type.CHOICE else []
    definition.required, definition.position = required, position
    definition.save()
    return definition


_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off", ""}


def _coerce_attribute(definition: AttributeDefinition, value: Any) -> Any:
    kind = definition.type
    if kind == AttributeDefinition.Type.TEXT:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        text = str(value)
        if len(text) > 1000:
            raise ValueError("must be at most 1000 characters")
        return text
    if kind == AttributeDefinition.Type.NUMBER:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError("must be a number") from exc
        if not number.is_finite():
            raise ValueError("must be a number")
        # Beyond 15 digits a JSON number loses precision in most clients (and int("1e999999999") would
        # build a billion-digit integer).
        if number and number.adjusted() >= 15:
            raise ValueError("must be less than 10^15")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == AttributeDefinition.Type.DATE:
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError as exc:
            raise ValueError("must be a date (YYYY-MM-DD)") from exc
    if kind == AttributeDefinition.Type.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if str(value) not in definition.choices:
        raise ValueError(f"must be one of: {', '.join(definition.choices)}")
    return str(value)


def clean_attributes(
    values: Mapping[str, Any], *, existing: Mapping[str, Any] | None = None, creating: bool = False
) -> dict[str, Any]:
    """Values checked against the tenant's definitions; None or "" removes a value."""
    if not isinstance(values, Mapping):
        raise ServiceError(
            "invalid_attributes", "Attributes must be an object of key: value.", field="attributes"
        )
    definitions = {d.key: d for d in AttributeDefinition.objects.all()}
    result = dict(existing or {})
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            raise ServiceError(
                "unknown_attribute", f"'{key}' is not a defined attribute.", field=f"attributes.{key}"
            )
        if value is None or value == "":
            result.pop(key, None)
            continue
        try:
            result[key] = _coerce_attribute(definition, value)
        except ValueError as exc:
            raise ServiceError(
                "invalid_attribute", f"{definition.label} {exc}.", field=f"attributes.{key}"
            ) from exc
    if creating:
        missing = [d for d in definitions.values() if d.required and d.key not in result]
        if missing:
            raise ServiceError(
                "missing_attribute", f"{missing[0].label} is required.", field=f"attributes.{missing[0].key}"
            )
    return result


# ---------------------------------------------------------------------------------------------------
# Contacts and notes
# ---------------------------------------------------------------------------------------------------

CONTACT_FIELDS = (
    "name",
    "email",
    "company",
    "owner",
    "marketing_consent",
    "blocked",
    "wa_id",
    "whatsapp_user_id",
)


def clean_phone(raw: str) -> str:
    try:
        return normalize_phone(raw, default_region=default_phone_region())
    except InvalidPhoneNumber as exc:
        raise ServiceError("invalid_phone", str(exc), field="phone") from exc


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    if email:
        try:
            validate_email(email)
        except ValidationError as exc:
            raise ServiceError("invalid_email", "Enter a valid email address.", field="email") from exc
    return email


def _apply_contact_changes(contact: Contact, changes: Mapping[str, Any], *, creating: bool) -> None:
    for field, value in changes.items():
        if field == "phone":
            contact.phone = clean_phone(value)
        elif field == "email":
            contact.email = _clean_email(value)
        elif field == "name":
            contact.name = (value or "").strip()[:200]
        elif field == "attributes":
            contact.attributes = clean_attributes(value or {}, existing=contact.attributes, creating=creating)
        elif field == "marketing_consent":
            if value not in Contact.MarketingConsent.values:
                raise ServiceError(
                    "invalid_consent", f"'{value}' is not a consent state.", field="marketing_consent"
                )
            if value != contact.marketing_consent:
                contact.marketing_consent = value
                contact.marketing_consent_at = timezone.now()
        elif field in CONTACT_FIELDS:
            setattr(contact, field, value)
        elif field != "tags":
            raise ServiceError("unknown_field", f"'{field}' cannot be set.", field=field)
    if creating and "attributes" not in changes:
        contact.attributes = clean_attributes({}, creating=True)


def _save_contact(contact: Contact) -> None:
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError as exc:
        raise ServiceError(
            "duplicate_phone", "A contact with this phone number exists.", field="phone", status_code=409
        ) from exc


@transaction.atomic
def create_contact(*, phone: str, tags: Iterable[Tag] | None = None, **fields: Any) -> Contact:
    contact = Contact()
    _apply_contact_changes(contact, {"phone": phone, **fields}, creating=True)
    if Contact.objects.filter(phone=contact.phone).exists():
        raise ServiceError(
            "duplicate_phone", "A contact with this phone number exists.", field="phone", status_code=409
        )
    _save_contact(contact)
    if tags:
        contact.tags.set(list(tags))
    return contact


@transaction.atomic
def update_contact(*, contact: Contact, tags: Iterable[Tag] | None = None, **changes: Any) -> Contact:
    _apply_contact_changes(contact, changes, creating=False)
    if "phone" in changes and Contact.objects.filter(phone=contact.phone).exclude(pk=contact.pk).exists():
        raise ServiceError(
            "duplicate_phone", "A contact with this phone number exists.", field="phone", status_code=409
        )
    _save_contact(contact)
    if tags is not None:
        contact.tags.set(list(tags))
    return contact


def set_marketing_consent(*, contact: Contact, consent: str) -> Contact:
    return update_contact(contact=contact, marketing_consent=consent)


def set_contact_blocked(*, contact: Contact, blocked: bool) -> Contact:
    return update_contact(contact=contact, blocked=blocked)


def delete_contact(*, contact: Contact) -> None:
    contact.delete()


@transaction.atomic
def merge_contacts(*, keep: Contact, discard: Contact) -> Contact:
    """`discard` folds into `keep`: conversations, notes, deals, tasks and tags move; blanks are filled.

    `keep` wins every conflict; the discarded phone number goes with the discarded contact.
    """
    if keep.pk == discard.pk:
        raise ServiceError("same_contact", "A contact cannot be merged into itself.", field="other")
    from conversations.models import Conversation

    keep = Contact.objects.select_for_update().get(pk=keep.pk)
    discard = Contact.objects.select_for_update().get(pk=discard.pk)
    Conversation.objects.filter(contact=discard).update(contact=keep)
    Note.objects.filter(contact=discard).update(contact=keep)
    Deal.objects.filter(contact=discard).update(contact=keep)
    Task.objects.filter(contact=discard).update(contact=keep)
    keep.tags.add(*discard.tags.all())
    for field in ("name", "email", "wa_id", "whatsapp_user_id"):
        if not getattr(keep, field):
            setattr(keep, field, getattr(discard, field))
    for field in ("company_id", "owner_id", "marketing_consent_at"):
        if getattr(keep, field) is None:
            setattr(keep, field, getattr(discard, field))
    if keep.marketing_consent == Contact.MarketingConsent.UNKNOWN:
        keep.marketing_consent = discard.marketing_consent
    # An opt-out or a block on either record is a promise to the customer: it survives the merge.
    if discard.marketing_consent == Contact.MarketingConsent.OPTED_OUT:
        keep.marketing_consent = Contact.MarketingConsent.OPTED_OUT
    keep.blocked = keep.blocked or discard.blocked
    keep.attributes = {**discard.attributes, **keep.attributes}
    for field in ("last_inbound_at", "last_outbound_at"):
        times = [t for t in (getattr(keep, field), getattr(discard, field)) if t is not None]
        setattr(keep, field, max(times) if times else None)
    discard.delete()
    keep.save()
    return keep


TAG_NAME_MAX = Tag._meta.get_field("name").max_length or 50


@transaction.atomic
def add_contact_tag(*, contact: Contact, name: str) -> Tag:
    """Tags the contact with the tag of that name (any case), creating the tag when there is none."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("invalid_name", "A tag needs a name.", field="name")
    if len(name) > TAG_NAME_MAX:
        raise ServiceError("invalid_name", f"A tag name has at most {TAG_NAME_MAX} characters.", field="name")
    tag = tags_by_name([name])[0]
    contact.tags.add(tag)
    return tag


def remove_contact_tag(*, contact: Contact, tag: Tag) -> None:
    """Takes the tag off the contact; the tag itself stays (deleting tags is for admins)."""
    contact.tags.remove(tag)


def add_note(*, contact: Contact, body: str, author: User | None) -> Note:
    body = body.strip()
    if not body:
        raise ServiceError("empty_note", "A note needs some text.", field="body")
    return Note.objects.create(contact=contact, body=body, author=author)


def update_note(*, note: Note, body: str) -> Note:
    body = body.strip()
    if not body:
        raise ServiceError("empty_note", "A note needs some text.", field="body")
    note.body = body
    note.save(update_fields=["body", "updated_at"])
    return note


# ---------------------------------------------------------------------------------------------------
# Pipelines, stages, deals
# ---------------------------------------------------------------------------------------------------

DEFAULT_STAGES = [
    ("New", 10, Stage.Kind.OPEN),
    ("Qualified", 30, Stage.Kind.OPEN),
    ("Proposal", 60, Stage.Kind.OPEN),
    ("Won", 100, Stage.Kind.WON),
    ("Lost", 0, Stage.Kind.LOST),
]


@transaction.atomic
def create_pipeline(*, name: str, stages: list[tuple[str, int, str]] | None = None) -> Pipeline:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A pipeline needs a name.", field="name")
    _check_pipeline_name_free(name=name, pipeline=None)
    position = (Pipeline.objects.aggregate(m=Max("position"))["m"] or 0) + 1
    pipeline = Pipeline(name=name, position=position)
    _save_pipeline(pipeline)
    Stage.objects.bulk_create(
        Stage(pipeline=pipeline, name=n, probability=p, kind=k, position=i)
        for i, (n, p, k) in enumerate(stages if stages is not None else DEFAULT_STAGES)
    )
    return pipeline


def _check_pipeline_name_free(*, name: str, pipeline: Pipeline | None) -> None:
    if _excluding(Pipeline.objects.filter(name__iexact=name), pipeline).exists():
        raise ServiceError(
            "duplicate_name", "A pipeline with this name exists.", field="name", status_code=409
        )


def _save_pipeline(pipeline: Pipeline) -> None:
    # The check above cannot see a concurrent request's uncommitted name; the unique index can.
    try:
        with transaction.atomic():
            pipeline.save()
    except IntegrityError as exc:
        raise ServiceError(
            "duplicate_name", "A pipeline with this name exists.", field="name", status_code=409
        ) from exc


def rename_pipeline(*, pipeline: Pipeline, name: str) -> Pipeline:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A pipeline needs a name.", field="name")
    _check_pipeline_name_free(name=name, pipeline=pipeline)
    pipeline.name = name
    _save_pipeline(pipeline)
    return pipeline


@transaction.atomic
def delete_pipeline(*, pipeline: Pipeline) -> None:
    """Deletes a pipeline and its stages, as long as no deal (open, won or lost) is in it.

    Deals keep their history and reports their numbers, so they are never deleted along with a
    pipeline: they are moved to another pipeline, or deleted, first (409 `pipeline_in_use`). The lock
    makes a deal created meanwhile wait for this decision.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if Deal.objects.filter(Q(pipeline=pipeline) | Q(stage__pipeline=pipeline)).exists():
        raise ServiceError(
            "pipeline_in_use",
            "This pipeline has deals: move them to another pipeline or delete them first.",
            status_code=409,
        )
    pipeline.delete()


def default_pipeline() -> Pipeline:
    """The first pipeline; a workspace gets a standard one the first time it needs one."""
    pipeline = Pipeline.objects.order_by("position", "id").first()
    return pipeline or create_pipeline(name="Sales")


def save_stage(
    *,
    stage: Stage | None = None,
    pipeline: Pipeline,
    name: str,
    probability: int = 0,
    kind: str = Stage.Kind.OPEN,
    position: int | None = None,
) -> Stage:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A stage needs a name.", field="name")
    if not 0 <= probability <= 100:
        raise ServiceError(
            "invalid_probability", "Probability is a percentage from 0 to 100.", field="probability"
        )
    if kind not in Stage.Kind.values:
        raise ServiceError("invalid_kind", f"'{kind}' is not a stage kind.", field="kind")
    if _excluding(Stage.objects.filter(pipeline=pipeline, name__iexact=name), stage).exists():
        raise ServiceError(
            "duplicate_name", "This pipeline has a stage with this name.", field="name", status_code=409
        )
    if stage is not None and stage.pipeline_id != pipeline.pk:
        raise ServiceError("invalid_pipeline", "A stage cannot move to another pipeline.", field="pipeline")
    stage = stage or Stage(pipeline=pipeline)
    if position is None:
        position = (
            stage.position if stage.pk else (pipeline.stages.aggregate(m=Max("position"))["m"] or 0) + 1
        )
    stage.name, stage.probability, stage.kind, stage.position = name, probability, kind, position
    stage.save()
    if stage.pk:
        Deal.objects.filter(stage=stage).exclude(status=_status_for(stage)).update(status=_status_for(stage))
    return stage


def _status_for(stage: Stage) -> str:
    return {Stage.Kind.WON: Deal.Status.WON, Stage.Kind.LOST: Deal.Status.LOST}.get(
        Stage.Kind(stage.kind), Deal.Status.OPEN
    )


def _clean_deal_value(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ServiceError("invalid_value", "The value must be a number.", field="value") from exc
    if not amount.is_finite() or amount < 0:
        raise ServiceError("invalid_value", "The value must be zero or more.", field="value")
    return amount.quantize(Decimal("0.01"))


@transaction.atomic
def create_deal(
    *,
    title: str,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    by: User | None = None,
    **fields: Any,
) -> Deal:
    title = title.strip()
    if not title:
        raise ServiceError("invalid_title", "A deal needs a title.", field="title")
    if stage is not None:
        pipeline = stage.pipeline if pipeline is None else pipeline
    pipeline = pipeline or default_pipeline()
    if stage is None:
        stage = pipeline.stages.order_by("position", "id").first()
        if stage is None:
            raise ServiceError("empty_pipeline", "This pipeline has no stages.", field="pipeline")
    if stage.pipeline_id != pipeline.pk:
        raise ServiceError("invalid_stage", "The stage belongs to another pipeline.", field="stage")
    deal = Deal(title=title[:200], pipeline=pipeline, stage=stage, status=_status_for(stage))
    _apply_deal_fields(deal, fields)
    if deal.status != Deal.Status.OPEN:
        deal.closed_at = timezone.now()
    deal.save()
    DealStageChange.objects.create(deal=deal, from_stage=None, to_stage=stage, changed_by=by)
    return deal


def _apply_deal_fields(deal: Deal, fields: Mapping[str, Any]) -> None:
    for field, value in fields.items():
        if field == "value":
            deal.value = _clean_deal_value(value)
        elif field == "currency":
            code = str(value or "").strip().upper()
            if len(code) != 3 or not code.isalpha():
                raise ServiceError(
                    "invalid_currency", "The currency is a 3-letter ISO code.", field="currency"
                )
            deal.currency = code
        elif field == "title":
            title = str(value or "").strip()
            if not title:
                raise ServiceError("invalid_title", "A deal needs a title.", field="title")
            deal.title = title[:200]
        elif field in ("contact", "company", "owner", "expected_close_date"):
            setattr(deal, field, value)
        else:
            raise ServiceError("unknown_field", f"'{field}' cannot be set.", field=field)


@transaction.atomic
def update_deal(*, deal: Deal, stage: Stage | None = None, by: User | None = None, **fields: Any) -> Deal:
    _apply_deal_fields(deal, fields)
    deal.save()
    if stage is not None and stage.pk != deal.stage_id:
        move_deal(deal=deal, stage=stage, by=by)
    return deal


@transaction.atomic
def move_deal(*, deal: Deal, stage: Stage, by: User | None = None) -> Deal:
    """Moves a deal to a stage of its pipeline, records the change and derives won/lost from the stage."""
    if stage.pipeline_id != deal.pipeline_id:
        raise ServiceError("invalid_stage", "The stage belongs to another pipeline.", field="stage")
    if stage.pk == deal.stage_id:
        return deal
    previous = deal.stage_id
    deal.stage = stage
    status = _status_for(stage)
    if status != deal.status:
        deal.closed_at = None if status == Deal.Status.OPEN else timezone.now()
    deal.status = status
    deal.save(update_fields=["stage", "status", "closed_at", "updated_at"])
    DealStageChange.objects.create(deal=deal, from_stage_id=previous, to_stage=stage, changed_by=by)
    return deal


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------

TASK_FIELDS = ("title", "description", "due_at", "assignee", "contact", "deal")


def _apply_task_fields(task: Task, fields: Mapping[str, Any]) -> None:
    for field, value in fields.items():
        if field not in TASK_FIELDS:
            raise ServiceError("unknown_field", f"'{field}' cannot be set.", field=field)
        if field == "title":
            value = str(value or "").strip()
            if not value:
                raise ServiceError("invalid_title", "A task needs a title.", field="title")
        setattr(task, field, value)


def create_task(*, title: str, created_by: User | None = None, **fields: Any) -> Task:
    task = Task(created_by=created_by)
    _apply_task_fields(task, {"title": title, **fields})
    task.save()
    return task


def update_task(*, task: Task, done: bool | None = None, **fields: Any) -> Task:
    _apply_task_fields(task, fields)
    if done is not None and done != task.done:
        task.done = done
        task.done_at = timezone.now() if done else None
    task.save()
    return task


def complete_task(*, task: Task, done: bool = True) -> Task:
    return update_task(task=task, done=done)


# ---------------------------------------------------------------------------------------------------
# API keys
# ---------------------------------------------------------------------------------------------------

API_KEY_PREFIX = "wacrm_"


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw: str  # shown once; only its hash is stored


def _key_kind(kind: str | None, user: User | None) -> str:
    if kind is None:
        return ApiKey.Kind.PERSONAL if user is not None else ApiKey.Kind.INTEGRATION
    if kind not in ApiKey.Kind.values:
        raise ServiceError("invalid_kind", f"'{kind}' is not a kind of API key.", field="kind")
    return kind


def _check_personal_key_owner(*, user: User | None, created_by: User | None, by_role: str | None) -> None:
    if user is None:
        raise ServiceError("invalid_user", "A personal key belongs to a user.", field="user")
    if not user.is_active or not Agent.objects.filter(user_id=user.pk).exists():
        raise ServiceError(
            "invalid_user", "A personal key belongs to an active member of this workspace.", field="user"
        )
    # A personal key acts as its user: only they make one (the operator's command, with no by_role, too).
    if by_role is not None and getattr(created_by, "pk", None) != user.pk:
        raise ServiceError(
            "forbidden_kind", "Only its user can make a personal key.", field="kind", status_code=403
        )


def _check_can_make_integration_key(*, role: str, by_role: str | None) -> None:
    if role not in ApiKey.INTEGRATION_ROLES:
        raise ServiceError(
            "invalid_role",
            "An integration key needs the role supervisor or above; for an agent's access, the agent "
            "makes a personal key.",
            field="role",
        )
    if by_role is not None and ROLE_RANK[Agent.Role(by_role)] < ROLE_RANK[Agent.Role.ADMIN]:
        raise ServiceError(
            "forbidden_kind",
            "Only admins and owners make integration keys; make a personal key instead.",
            field="kind",
            status_code=403,
        )
    _check_can_grant(by_role=by_role, current=None, new=role)


def check_api_key_identity(
    *,
    kind: str | None,
    role: str | None,
    user: User | None,
    created_by: User | None = None,
    by_role: str | None = None,
) -> tuple[str, str]:
    """The (kind, role) a new key would have, or the ServiceError that refuses it (forms call this to
    show the refusal next to its field before anything is made)."""
    kind = _key_kind(kind, user)
    if role and role not in Agent.Role.values:
        raise ServiceError("invalid_role", f"'{role}' is not a role.", field="role")
    if kind == ApiKey.Kind.PERSONAL:
        if role:
            raise ServiceError(
                "invalid_role", "A personal key has its user's role; it takes none of its own.", field="role"
            )
        _check_personal_key_owner(user=user, created_by=created_by, by_role=by_role)
        return kind, ""
    if user is not None:
        raise ServiceError("invalid_user", "An integration key belongs to no user.", field="user")
    role = role or Agent.Role.ADMIN
    _check_can_make_integration_key(role=role, by_role=by_role)
    return kind, role


MAX_API_KEY_DAYS = 3650


def create_api_key(
    *,
    name: str,
    kind: str | None = None,
    role: str | None = None,
    user: User | None = None,
    expires_at: dt.datetime | None = None,
    expires_in_days: int | None = None,
    created_by: User | None = None,
    by_role: str | None = None,
    rotated_from: ApiKey | None = None,
) -> IssuedApiKey:
    """A personal key (`user` given: acts as that user, with their role and teams at each request) or an
    integration key (tenant-wide, with `role`, supervisor or above; default admin).

    `by_role` is the role of the person making it (None for the operator's command): nobody makes a
    key above their own role; only its user makes a personal key; only admins and owners make
    integration keys, so an agent or a supervisor makes personal keys only."""
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "An API key needs a name.", field="name")
    kind, role = check_api_key_identity(
        kind=kind, role=role, user=user, created_by=created_by, by_role=by_role
    )
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise ServiceError("invalid_expiry", "Expiry must be at least one day.", field="expires_in_days")
        if expires_in_days > MAX_API_KEY_DAYS:
            # Far enough past this a date overflows (OverflowError); a key meant to live that long: no expiry.
            raise ServiceError(
                "invalid_expiry",
                f"Expiry is at most {MAX_API_KEY_DAYS} days; leave it empty for never.",
                field="expires_in_days",
            )
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("invalid_expiry", "Expiry must be in the future.", field="expires_at")
    prefix = secrets.token_hex(4)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name[:100],
        prefix=prefix,
        hashed_key=hash_api_key(raw),
        kind=kind,
        user=user if kind == ApiKey.Kind.PERSONAL else None,
        role=role,
        created_by=created_by,
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    return IssuedApiKey(api_key=key, raw=raw)


def api_keys_visible_to(*, user: User, role: str | None) -> QuerySet[ApiKey]:
    """Admins and owners manage every key; everyone else sees their own personal keys."""
    keys = ApiKey.objects.select_related("created_by", "user")
    if role is not None and ROLE_RANK[Agent.Role(role)] >= ROLE_RANK[Agent.Role.ADMIN]:
        return keys
    return keys.filter(kind=ApiKey.Kind.PERSONAL, user_id=user.pk)


def _check_can_manage_key(*, api_key: ApiKey, by: User | None, by_role: str | None) -> None:
    if by_role is None:  # the operator
        return
    own = api_key.is_personal and api_key.user_id is not None and api_key.user_id == getattr(by, "pk", None)
    if own or ROLE_RANK[Agent.Role(by_role)] >= ROLE_RANK[Agent.Role.ADMIN]:
        return
    raise ServiceError("forbidden", "That key is not yours to manage.", status_code=403)


def rotate_api_key(
    *, api_key: ApiKey, created_by: User | None = None, by_role: str | None = None
) -> IssuedApiKey:
    """A new key with the same name, kind, identity and lifetime; the old one keeps working until revoked.

    Rotating issues a new secret, so it takes the right to make that key: an admin must not mint an
    owner key by rotating the owner's, nor a key that acts as someone else by rotating their personal
    key (only its user rotates a personal key)."""
    if api_key.revoked_at is not None:
        raise ServiceError("revoked_key", "A revoked key cannot be rotated.", status_code=409)
    lifetime = api_key.expires_at - api_key.created_at if api_key.expires_at else None
    return create_api_key(
        name=api_key.name,
        kind=api_key.kind,
        role=api_key.role or None,
        user=api_key.user,
        expires_at=timezone.now() + lifetime if lifetime else None,
        created_by=created_by,
        by_role=by_role,
        rotated_from=api_key,
    )


def revoke_api_key(*, api_key: ApiKey, by: User | None = None, by_role: str | None = None) -> ApiKey:
    """Its user revokes a personal key; admins and owners revoke any key."""
    _check_can_manage_key(api_key=api_key, by=by, by_role=by_role)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


# Writing last_used_at on every request would turn reads into writes; a minute's precision is enough.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def touch_api_key(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


# ---------------------------------------------------------------------------------------------------
# CSV import
# ---------------------------------------------------------------------------------------------------

MAX_IMPORT_BYTES = 10 * 1024 * 1024
IMPORT_COLUMNS = ("phone", "name", "email", "company", "tags", "marketing_consent")
# An export imports back as it is: the import reads these columns and the attribute keys after them.
EXPORT_COLUMNS = (*IMPORT_COLUMNS, "blocked", "owner", "created_at", "last_inbound_at")


@transaction.atomic
def start_contact_import(*, filename: str, content: bytes | str, created_by: User | None) -> ContactImport:
    """Stores the file and enqueues the job after commit; the job reports progress on the row."""
    if isinstance(content, bytes):
        if len(content) > MAX_IMPORT_BYTES:
            raise ServiceError("file_too_large", "The file is larger than 10 MB.", field="file")
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ServiceError("invalid_encoding", "The file must be UTF-8 CSV.", field="file") from exc
    reader = csv.reader(io.StringIO(content))
    header = [h.strip().lower() for h in next(reader, [])]
    if "phone" not in header:
        raise ServiceError("missing_phone_column", "The CSV needs a 'phone' column.", field="file")
    total = sum(1 for row in reader if any(cell.strip() for cell in row))
    job = ContactImport.objects.create(
        filename=filename[:200], content=content, total_rows=total, created_by=created_by
    )
    from crm.actors import import_contacts

    transaction.on_commit(lambda: import_contacts.send(job.pk))
    return job


PROGRESS_EVERY = 200


def run_contact_import(*, contact_import: ContactImport) -> ContactImport:
    """Each row in its own savepoint: a bad row is reported and skipped, never spoils the others.

    Rows are deduplicated by normalised phone: a known number updates that contact (blank cells do not
    erase what is there), a repeated number in the file updates the row before it.
    """
    job = contact_import
    job.status = ContactImport.Status.RUNNING
    job.processed_rows = job.created_count = job.updated_count = job.rejected_count = 0
    job.save(update_fields=["status", "processed_rows", "created_count", "updated_count", "rejected_count"])
    job.rejections.all().delete()
    definitions = {d.key for d in AttributeDefinition.objects.all()}
    companies: dict[str, Company] = {}
    reader = csv.DictReader(io.StringIO(job.content))
    reader.fieldnames = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    row_number = 1
    for row in reader:
        row_number += 1  # the header is row 1, as in a spreadsheet
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        try:
            with transaction.atomic():
                created = _import_row(row, definitions=definitions, companies=companies)
            if created:
                job.created_count += 1
            else:
                job.updated_count += 1
        except ServiceError as exc:
            job.rejected_count += 1
            ImportRejection.objects.create(
                contact_import=job, row_number=row_number, reason=exc.message[:300], data=_row_data(row)
            )
        job.processed_rows += 1
        if job.processed_rows % PROGRESS_EVERY == 0:
            job.save(update_fields=["processed_rows", "created_count", "updated_count", "rejected_count"])
    job.status = ContactImport.Status.DONE
    job.total_rows = job.processed_rows
    job.finished_at = timezone.now()
    job.save()
    return job


def _row_data(row: Mapping[str | None, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row.items() if k is not None}


def _import_row(row: Mapping[str, Any], *, definitions: set[str], companies: dict[str, Company]) -> bool:
    if None in row:
        raise ServiceError("extra_cells", "The row has more cells than the header.")
    # A cell our export quoted against spreadsheet formulas (core.csvsafe) imports as it was.
    values = {k: csvsafe.unquote_cell((v or "").strip()) for k, v in row.items() if k}
    if not values.get("phone"):
        raise ServiceError("missing_phone", "The phone number is missing.")
    fields: dict[str, Any] = {}
    for name in ("name", "email", "marketing_consent"):
        if values.get(name):
            fields[name] = values[name]
    if "marketing_consent" in fields:
        fields["marketing_consent"] = fields["marketing_consent"].lower().replace("-", "_").replace(" ", "_")
    attributes = {k: v for k, v in values.items() if k in definitions and v}
    if attributes:
        fields["attributes"] = attributes
    if values.get("company"):
        name = values["company"]
        company = companies.get(name.lower()) or Company.objects.filter(name__iexact=name).first()
        companies[name.lower()] = company or save_company(name=name)
        fields["company"] = companies[name.lower()]
    tags = tags_by_name(values.get("tags", "").replace(";", ",").split(",")) if values.get("tags") else None
    phone = clean_phone(values["phone"])
    existing = Contact.objects.filter(phone=phone).first()
    if existing is None:
        contact = create_contact(phone=phone, **fields)
        if tags:
            contact.tags.add(*tags)
        return True
    update_contact(contact=existing, **fields)
    if tags:
        existing.tags.add(*tags)
    return False
