"""Contacts, their tags, consent, merges and notes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from core.errors import ServiceError
from crm import outgoing_events
from crm.models import Contact, Note, Tag
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.selectors import default_phone_region
from crm.services.attributes import clean_attributes
from crm.services.tags import tags_by_name

User = Any  # the tenant's auth user (django.contrib.auth.User)


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
            if not creating and contact.whatsapp_user_id and not (value or "").strip():
                contact.phone = ""  # known by its WhatsApp user id: the number is optional
            else:
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
                    "invalid_consent",
                    f"'{value}' is not a consent state.",
                    field="marketing_consent",
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
            "duplicate_phone",
            "A contact with this phone number exists.",
            field="phone",
            status=409,
        ) from exc


@transaction.atomic
def create_contact(*, phone: str, tags: Iterable[Tag] | None = None, **fields: Any) -> Contact:
    contact = Contact()
    _apply_contact_changes(contact, {"phone": phone, **fields}, creating=True)
    if Contact.objects.filter(phone=contact.phone).exists():
        raise ServiceError(
            "duplicate_phone",
            "A contact with this phone number exists.",
            field="phone",
            status=409,
        )
    _save_contact(contact)
    if tags:
        contact.tags.set(list(tags))
    outgoing_events.contact_changed(contact, created=True)
    return contact


@transaction.atomic
def update_contact(*, contact: Contact, tags: Iterable[Tag] | None = None, **changes: Any) -> Contact:
    _apply_contact_changes(contact, changes, creating=False)
    if (
        "phone" in changes
        and contact.phone
        and Contact.objects.filter(phone=contact.phone).exclude(pk=contact.pk).exists()
    ):
        raise ServiceError(
            "duplicate_phone",
            "A contact with this phone number exists.",
            field="phone",
            status=409,
        )
    _save_contact(contact)
    if tags is not None:
        contact.tags.set(list(tags))
    outgoing_events.contact_changed(contact)
    return contact


def set_marketing_consent(*, contact: Contact, consent: str) -> Contact:
    return update_contact(contact=contact, marketing_consent=consent)


def set_contact_blocked(*, contact: Contact, blocked: bool) -> Contact:
    return update_contact(contact=contact, blocked=blocked)


@transaction.atomic
def delete_contact(*, contact: Contact) -> None:
    audit.record("contact.deleted", target=("contact", contact.pk, f"Contact #{contact.pk}"))
    contact.delete()


def _move_rows_pointing_at(discard: Contact, *, to: Contact) -> None:
    """Every row whose foreign key names the discarded contact names the kept one instead: notes, deals,
    tasks, and the rows of apps above crm (conversations) that crm does not know of, so a merge loses
    nothing to the cascade when the discarded contact is deleted."""
    for relation in Contact._meta.related_objects:
        if relation.one_to_many:
            rows = relation.related_model._base_manager.filter(**{relation.field.name: discard})
            rows.update(**{relation.field.name: to})


@transaction.atomic
def merge_contacts(*, keep: Contact, discard: Contact) -> Contact:
    """`discard` folds into `keep`: conversations, notes, deals, tasks and tags move; blanks are filled.

    `keep` wins every conflict; the discarded phone number goes with the discarded contact unless
    `keep` has none (a contact known by its WhatsApp user id alone). The identities (BSUIDs) move too.
    """
    if keep.pk == discard.pk:
        raise ServiceError("same_contact", "A contact cannot be merged into itself.", field="other")
    keep = Contact.objects.select_for_update().get(pk=keep.pk)
    discard = Contact.objects.select_for_update().get(pk=discard.pk)
    _move_rows_pointing_at(discard, to=keep)
    keep.tags.add(*discard.tags.all())
    for field in ("name", "email", "wa_id", "whatsapp_user_id", "username", "phone"):
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
    audit.record("contact.merged", target=keep, details={"kept": keep.pk, "merged": discard.pk})
    discard.delete()
    keep.save()
    outgoing_events.contact_changed(keep)
    return keep


TAG_NAME_MAX = Tag._meta.get_field("name").max_length or 50


@transaction.atomic
def add_contact_tag(*, contact: Contact, name: str) -> Tag:
    """Tags the contact with the tag of that name (any case), creating the tag when there is none."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("invalid_name", "A tag needs a name.", field="name")
    if len(name) > TAG_NAME_MAX:
        raise ServiceError(
            "invalid_name",
            f"A tag name has at most {TAG_NAME_MAX} characters.",
            field="name",
        )
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
