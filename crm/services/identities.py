"""Who a WhatsApp sender is: a contact found (or created) by phone, business-scoped user id (BSUID) or
parent BSUID, and never two contacts for one person.

Meta identifies a WhatsApp user by their number (`wa_id`) and, since April 2026, by a BSUID, one per
business portfolio; a user with a username may arrive with the BSUID alone. The number can appear later
(the user shares it, Meta's contact book knows it), and so can a BSUID for a contact we had by number.
Whenever one sender's identifiers point at two contacts, they are merged (crm.services.contacts.
merge_contacts: conversations, notes, deals, tasks and tags move, an audit entry is written).

Concurrency: the identities are unique in the database (contact_phone_unique, contact_identity_unique).
A new contact and its identities are inserted in one savepoint; a concurrent delivery of the same new
sender blocks on the unique index until the first commits, fails, rolls its savepoint back and finds
the first one's contact. Contacts are locked (SELECT ... FOR UPDATE) in id order before a merge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from crm import outgoing_events
from crm.models import Contact, ContactIdentity
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.services.contacts import merge_contacts

# A BSUID is "CC.<up to 128 alphanumerics>" (a parent one "CC.ENT.<...>"): 140 leaves room.
MAX_ID = ContactIdentity._meta.get_field("value").max_length or 140
MAX_USERNAME = Contact._meta.get_field("username").max_length or 64
# Concurrent first deliveries of one sender: each retry finds the rows the other committed.
ATTEMPTS = 3


@dataclass(frozen=True)
class WhatsAppUser:
    """What a webhook says about a WhatsApp user; every part may be empty (but not all of them)."""

    wa_id: str = ""  # digits
    bsuid: str = ""
    parent_bsuid: str = ""
    username: str = ""
    name: str = ""
    scope: str = ""  # the WhatsApp Business Account it was seen on

    @property
    def known(self) -> bool:
        return bool(self.wa_id or self.bsuid or self.parent_bsuid)


def phone_for(wa_id: str) -> str:
    """The E.164 phone of a wa_id; a number the library does not know (fictional +1 555 numbers) is kept
    as its digits."""
    try:
        return normalize_phone(wa_id)
    except InvalidPhoneNumber:
        return "+" + "".join(ch for ch in wa_id if ch.isdigit())


def clean_username(raw: str) -> str:
    return (raw or "").strip().lstrip("@")[:MAX_USERNAME]


def _identities(user: WhatsAppUser) -> list[tuple[str, str]]:
    found = []
    if user.bsuid:
        found.append((ContactIdentity.Kind.BSUID.value, user.bsuid[:MAX_ID]))
    if user.parent_bsuid:
        found.append((ContactIdentity.Kind.PARENT_BSUID.value, user.parent_bsuid[:MAX_ID]))
    return found


def _matching_ids(user: WhatsAppUser) -> list[int]:
    ids: set[int] = set()
    if user.wa_id:
        ids.update(Contact.objects.filter(wa_id=user.wa_id).values_list("id", flat=True))
        ids.update(Contact.objects.filter(phone=phone_for(user.wa_id)).values_list("id", flat=True))
    for kind, value in _identities(user):
        ids.update(
            ContactIdentity.objects.filter(kind=kind, value=value).values_list("contact_id", flat=True)
        )
    return sorted(ids)


def _lock(ids: list[int]) -> list[Contact]:
    """The contacts, locked in id order (the order every worker takes them in)."""
    return list(Contact.objects.select_for_update().filter(pk__in=ids).order_by("id"))


def _keeper(contacts: list[Contact]) -> Contact:
    """The contact the others fold into: one with a phone number (what staff know it by), else the oldest."""
    with_phone = [c for c in contacts if c.phone]
    return (with_phone or contacts)[0]


def _merged(contacts: list[Contact]) -> Contact:
    keep = _keeper(contacts)
    for other in contacts:
        if other.pk != keep.pk:
            keep = merge_contacts(keep=keep, discard=other)
    return keep


def _create(user: WhatsAppUser, seen_at: dt.datetime | None) -> Contact | None:
    """A new contact with the user's identities, or None when a concurrent delivery created them first."""
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                phone=phone_for(user.wa_id) if user.wa_id else "",
                wa_id=user.wa_id,
                name=user.name[:200],
                username=clean_username(user.username),
                whatsapp_user_id=user.bsuid[:MAX_ID],
                last_inbound_at=seen_at,
                attributes={},
            )
            ContactIdentity.objects.bulk_create(
                [
                    ContactIdentity(contact=contact, kind=kind, value=value, scope=user.scope)
                    for kind, value in _identities(user)
                ]
            )
    except IntegrityError:
        return None
    outgoing_events.contact_changed(contact, created=True)
    return Contact.objects.select_for_update().get(pk=contact.pk)


def record_identities(*, contact: Contact, user: WhatsAppUser) -> Contact:
    """Attaches the user's BSUIDs (and number, username, name) to `contact`, which the caller has
    locked; a BSUID or number held by another contact merges that contact into this one (or this one
    into it, when only the other has a phone number). Returns the contact that remains, locked."""
    others = [pk for pk in _matching_ids(user) if pk != contact.pk]
    if others:
        contact = _merged(_lock(sorted({contact.pk, *others})))
    fields: list[str] = []
    if user.wa_id and not contact.wa_id:
        contact.wa_id = user.wa_id
        fields.append("wa_id")
    if user.wa_id and not contact.phone:
        contact.phone = phone_for(user.wa_id)
        fields.append("phone")
    if user.name and not contact.name:
        contact.name = user.name[:200]
        fields.append("name")
    username = clean_username(user.username)
    if username and contact.username != username:
        contact.username = username  # usernames change: the latest one is the one shown
        fields.append("username")
    if user.bsuid and contact.whatsapp_user_id != user.bsuid[:MAX_ID]:
        contact.whatsapp_user_id = user.bsuid[:MAX_ID]
        fields.append("whatsapp_user_id")
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
        outgoing_events.contact_changed(contact)
    for kind, value in _identities(user):
        identity, created = ContactIdentity.objects.get_or_create(
            kind=kind, value=value, defaults={"contact": contact, "scope": user.scope}
        )
        moved = identity.contact_id != contact.pk or (user.scope and identity.scope != user.scope)
        if not created and moved:
            # Only ours can be here (others were merged above, under lock) unless another worker raced
            # in between; then the row is moved, which the unique key keeps single.
            identity.contact = contact
            identity.scope = user.scope or identity.scope
            identity.save(update_fields=["contact", "scope", "updated_at"])
    return contact


@transaction.atomic
def resolve_whatsapp_contact(*, user: WhatsAppUser, seen_at: dt.datetime | None = None) -> Contact:
    """The contact of a WhatsApp user, locked for the caller's transaction: found by number or BSUID,
    merged when they name several, created (with phone or without) when none. Raises ValueError when
    the user has no identifier at all."""
    if not user.known:
        raise ValueError("A WhatsApp user needs a wa_id or a business-scoped user id.")
    for _ in range(ATTEMPTS):
        ids = _matching_ids(user)
        if ids:
            contacts = _lock(ids)
            if contacts:
                return record_identities(contact=_merged(contacts), user=user)
            continue  # merged away meanwhile: look again
        created = _create(user, seen_at)
        if created is not None:
            return created
    raise IntegrityError("The WhatsApp user's contact kept changing under concurrent deliveries.")


def identity_for_sending(*, contact: Contact, scope: str) -> tuple[str, str]:
    """Where a message to `contact` goes from a number of account `scope`: ("to", number) when the
    contact has one, else ("recipient", BSUID) — the BSUID seen on that account first, then a parent
    BSUID (valid across an enterprise's portfolios), then the latest one. ("", "") when there is none."""
    if contact.wa_id or contact.phone:
        return "to", contact.wa_id or contact.phone.lstrip("+")
    identities = list(
        ContactIdentity.objects.filter(
            contact=contact, kind__in=[ContactIdentity.Kind.BSUID, ContactIdentity.Kind.PARENT_BSUID]
        ).order_by("-updated_at", "-id")
    )

    def rank(identity: ContactIdentity) -> int:
        if identity.kind == ContactIdentity.Kind.BSUID and scope and identity.scope == scope:
            return 0
        if identity.kind == ContactIdentity.Kind.PARENT_BSUID:
            return 1
        return 2

    if identities:
        return "recipient", min(identities, key=rank).value
    if contact.whatsapp_user_id:
        return "recipient", contact.whatsapp_user_id
    return "", ""
