"""Delivery statuses of outbound messages."""

from __future__ import annotations

from conversations import events
from conversations.models import Channel, Message
from conversations.services import apply_message_status, merge_message_status
from conversations.services.pricing import merge_message_pricing
from crm.models import Contact, ContactIdentity
from crm.services.identities import WhatsAppUser, record_identities
from tenants.db import update_rows
from whatsapp import metrics, parsing
from whatsapp.models import PendingStatus
from whatsapp.pricing import apply_pricing, pricing_of, recipient_of

# Every field a status (or its pricing) may change: a round writes them all for its changed messages.
STATUS_FIELDS = [
    "status",
    "sent_at",
    "delivered_at",
    "read_at",
    "error_code",
    "error_title",
    "error_details",
    "pricing_model",
    "pricing_category",
    "pricing_type",
    "billable",
    "pricing_market",
]


def ingest_statuses(statuses: list[tuple[Channel, parsing.StatusUpdate]]) -> None:
    """A webhook round's statuses, applied together: campaign traffic brings three per message (sent,
    delivered, read), and one locked read and one UPDATE per status was most of its cost.

    The round's messages are read and locked in one query (in wamid order, as the bulk sender's result
    write locks them, so the two wait for each other instead of deadlocking); each message's statuses
    of the round merge in timestamp order by the same monotonic rule as one status (read never goes
    back to delivered; failed carries its code and title); the changed messages are written with one
    UPDATE and get one realtime event each (their final state, not one per status); statuses of
    wamids we do not know yet are kept as PendingStatus with one INSERT. The number of statements does
    not grow with the round, except for the rare cases handled one status at a time as before: a
    status naming a message whose wamid we never stored (adopted by its biz_opaque_callback_data), a
    recipient's business-scoped user id the contact does not have yet, and a market to find from the
    contact's phone."""
    from whatsapp.delivery import OPAQUE_PREFIX

    valid = [(channel, update) for channel, update in statuses if update.wamid and update.status]
    if not valid:
        return
    by_wamid: dict[str, list[tuple[Channel, parsing.StatusUpdate]]] = {}
    for channel, update in valid:
        by_wamid.setdefault(update.wamid, []).append((channel, update))
    messages = {
        message.wamid: message
        for message in Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(wamid__in=list(by_wamid))
        .order_by("wamid")
    }
    pending: list[PendingStatus] = []
    one_by_one: list[tuple[Channel, parsing.StatusUpdate]] = []
    changed: list[Message] = []
    for wamid, items in by_wamid.items():
        message = messages.get(wamid)
        if message is None:
            if any(update.opaque.startswith(OPAQUE_PREFIX) for _, update in items):
                one_by_one += items  # adopts the message (or keeps the statuses pending), in order
            else:
                pending += [
                    PendingStatus(
                        wamid=wamid, status=update.status, timestamp=update.timestamp, payload=update.raw
                    )
                    for _, update in items
                ]
            continue
        if _merge(message, [update for _, update in items]):
            changed.append(message)
    if pending:
        PendingStatus.objects.bulk_create(pending)
    if changed:
        update_rows(Message, changed, STATUS_FIELDS)
        events.publish_events([_updated_event(message) for message in changed])
    _record_recipients(
        [
            (channel, messages[wamid], update)
            for channel, update in valid
            if (wamid := update.wamid) in messages
        ]
    )
    for channel, update in one_by_one:
        ingest_status(channel=channel, update=update)


def _merge(message: Message, updates: list[parsing.StatusUpdate]) -> bool:
    """Merge one message's statuses of a round into it (not saved); returns whether anything changed."""
    changed = False
    for update in sorted(updates, key=lambda u: u.timestamp):  # stable: ties keep their arrival order
        if merge_message_status(
            message=message,
            status=update.status,
            timestamp=update.timestamp,
            error_code=update.error_code,
            error_title=update.error_title,
            error_details=update.error_details,
        ):
            changed = True
            metrics.MESSAGES.labels(direction="out", type=message.type, status=update.status).inc()
        pricing = pricing_of(update.raw)
        if pricing is not None and message.direction == Message.Direction.OUTBOUND:
            recipient = recipient_of(update.raw)
            # Without the recipient's number (a BSUID-only status) the market needs the contact's
            # phone: read for that message alone, as one status would.
            if merge_message_pricing(message=message, pricing=pricing, recipient=recipient):
                changed = True
    return changed


def _updated_event(message: Message) -> events.Event:
    return events.Event(
        message.conversation,
        {
            "type": "message.updated",
            "conversation": message.conversation_id,
            "message": message.pk,
            "status": message.status,
        },
    )


def _record_recipients(items: list[tuple[Channel, Message, parsing.StatusUpdate]]) -> None:
    """The recipients' business-scoped user ids: which contacts know theirs is one query for the round;
    a contact that does not yet learns it one at a time (once per contact)."""
    wanted: dict[tuple[int, str, str], tuple[Channel, Message, parsing.StatusUpdate]] = {}
    for channel, message, update in items:
        if update.recipient_user_id or update.recipient_parent_user_id:
            key = (message.conversation.contact_id, update.recipient_user_id, update.recipient_parent_user_id)
            wanted.setdefault(key, (channel, message, update))
    if not wanted:
        return
    contacts = {contact_id for contact_id, _, _ in wanted}
    values = {v for _, user_id, parent_id in wanted for v in (user_id, parent_id) if v}
    known = set(
        ContactIdentity.objects.filter(contact_id__in=list(contacts), value__in=list(values)).values_list(
            "contact_id", "value"
        )
    )
    for (contact_id, user_id, parent_id), (channel, message, update) in sorted(wanted.items()):
        if all((contact_id, v) in known for v in (user_id, parent_id) if v):
            continue
        _record_recipient_ids(channel=channel, message=message, update=update)


def ingest_status(*, channel: Channel, update: parsing.StatusUpdate) -> Message | None:
    from whatsapp.delivery import (
        INTERRUPTED_TITLE,
        OPAQUE_PREFIX,
        apply_pending_statuses,
    )

    if not update.wamid or not update.status:
        return None
    message = Message.objects.select_for_update().filter(wamid=update.wamid).first()
    if message is None and update.opaque.startswith(OPAQUE_PREFIX):
        # Meta accepted a send whose wamid we never stored (worker killed mid-send): adopt it now.
        pk = update.opaque.removeprefix(OPAQUE_PREFIX)
        message = (
            Message.objects.select_for_update()
            .filter(
                pk=int(pk) if pk.isdigit() else 0,
                direction=Message.Direction.OUTBOUND,
                wamid__isnull=True,
                conversation__channel=channel,
            )
            .first()
        )
        if message is not None:
            message.wamid = update.wamid
            message.send_started_at = None
            if message.status == Message.Status.FAILED and message.error_title == INTERRUPTED_TITLE:
                message.status = Message.Status.QUEUED
                message.error_title = ""
            message.save(update_fields=["wamid", "send_started_at", "status", "error_title"])
            apply_pending_statuses(message=message)
    if message is None:
        PendingStatus.objects.create(
            wamid=update.wamid,
            status=update.status,
            timestamp=update.timestamp,
            payload=update.raw,
        )
        return None
    if apply_message_status(
        message=message,
        status=update.status,
        timestamp=update.timestamp,
        error_code=update.error_code,
        error_title=update.error_title,
        error_details=update.error_details,
    ):
        metrics.MESSAGES.labels(direction="out", type=message.type, status=update.status).inc()
    apply_pricing(message=message, raw=update.raw)
    _record_recipient_ids(channel=channel, message=message, update=update)
    return message


def _record_recipient_ids(*, channel: Channel, message: Message, update: parsing.StatusUpdate) -> None:
    """A status names the recipient's business-scoped user id (recipient_user_id): a contact we knew by
    number alone learns it, so that later messages from the same user without a number (or a contact
    already known by that id) end up on one contact. Checked without a lock first: once per contact."""
    user_id, parent_id = update.recipient_user_id, update.recipient_parent_user_id
    if not (user_id or parent_id):
        return
    values = [v for v in (user_id, parent_id) if v]
    contact_id = message.conversation.contact_id
    known = ContactIdentity.objects.filter(contact_id=contact_id, value__in=values).count()
    if known == len(values):
        return
    locked = Contact.objects.select_for_update().filter(pk=contact_id).first()
    if locked is not None:
        user = WhatsAppUser(bsuid=user_id, parent_bsuid=parent_id, scope=channel.waba_id)
        record_identities(contact=locked, user=user)
