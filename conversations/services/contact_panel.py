"""The contact side panel: the CRM's services write, and the inbox hears about it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F, Q

from conversations import events
from conversations.models import Conversation
from conversations.services.common import check_can_act
from crm import services as crm_services
from crm.models import Contact, Note, Tag

# A contact rarely has more than a few live conversations; the bound keeps one edit one small batch.
CONTACT_EVENT_LIMIT = 50


def _contact_changed(conversation: Conversation) -> None:
    """List rows and thread heads show the contact's name, panels its details: tell those who see
    its active conversations and the one the change came from (resolved ones show it when next drawn)."""
    related = (
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .filter(~Q(status=Conversation.Status.RESOLVED) | Q(pk=conversation.pk))
        .only("pk", "status", "assignee_id", "team_id", "unread_count")
        .order_by(F("last_message_at").desc(nulls_last=True), "-id")[:CONTACT_EVENT_LIMIT]
    )
    for other in related:
        events.conversation_updated(other, change="contact")


def _locked_contact(conversation: Conversation) -> Contact:
    # The panel edits one field at a time: a fresh, locked row keeps two agents' edits of different
    # fields from overwriting each other (update_contact saves the whole row).
    return Contact.objects.select_for_update().get(pk=conversation.contact_id)


@transaction.atomic
def edit_contact(*, conversation: Conversation, by: Any, **changes: Any) -> Contact:
    """Changes details or attributes of the conversation's contact (crm.services.update_contact)."""
    # The contact's lock before the conversation's: the inbound round's order.
    locked = _locked_contact(conversation)
    check_can_act(conversation, by)
    contact = crm_services.update_contact(contact=locked, **changes)
    _contact_changed(conversation)
    return contact


@transaction.atomic
def tag_contact(*, conversation: Conversation, name: str, by: Any) -> Tag:
    locked = _locked_contact(conversation)
    check_can_act(conversation, by)
    tag = crm_services.add_contact_tag(contact=locked, name=name)
    _contact_changed(conversation)
    return tag


@transaction.atomic
def untag_contact(*, conversation: Conversation, tag: Tag, by: Any) -> None:
    locked = _locked_contact(conversation)
    check_can_act(conversation, by)
    crm_services.remove_contact_tag(contact=locked, tag=tag)
    _contact_changed(conversation)


@transaction.atomic
def note_contact(*, conversation: Conversation, body: str, by: Any) -> Note:
    # The note's row refers to the contact (a key-share lock on it): take the contact first, as the
    # inbound round does, before the conversation.
    locked = _locked_contact(conversation)
    check_can_act(conversation, by)
    note = crm_services.add_note(contact=locked, body=body, author=by)
    _contact_changed(conversation)
    return note
