"""Delivery statuses of outbound messages."""

from __future__ import annotations

from dataclasses import replace

from conversations import events
from conversations.models import Channel, Message
from conversations.services import merge_message_status
from conversations.services.pricing import merge_message_pricing
from crm.models import Contact, ContactIdentity
from crm.services.identities import WhatsAppUser, record_identities
from tenants.db import connection, update_rows
from whatsapp import metrics, parsing
from whatsapp.models import PendingStatus
from whatsapp.pricing import pricing_of, recipient_of

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

    The round's messages are locked in one statement, in wamid order: the order of the bulk sender's
    result write (delivery.record_messages_sent), so the two wait for each other instead of
    deadlocking. That includes a message Meta accepted whose wamid we have not stored yet (the send's
    answer is still being written, or the worker died after the request went out): its status names it
    by biz_opaque_callback_data, and it is locked by id in the place of the wamid it is about to get.
    Locking it waits for a result write in progress, so a status is never kept pending for a wamid that
    was stored meanwhile. Such a message adopts the wamid, with the statuses kept pending for it before.
    Each message's statuses merge in timestamp order by the same monotonic rule as one status (read never
    goes back to delivered; failed carries its code and title); the changed messages are written with one
    UPDATE and get one realtime event each (their final state, not one per status); statuses of wamids
    we do not know are kept as PendingStatus with one INSERT. The number of statements does not grow
    with the round, except for rare cases handled one at a time: a recipient's business-scoped user id
    the contact does not have yet, and a market to find from the contact's phone."""
    valid = [(channel, update) for channel, update in statuses if update.wamid and update.status]
    if not valid:
        return
    by_wamid: dict[str, list[tuple[Channel, parsing.StatusUpdate]]] = {}
    claimed_by: dict[str, tuple[int, int]] = {}  # wamid -> (message id named by our opaque, its number)
    for channel, update in valid:
        by_wamid.setdefault(update.wamid, []).append((channel, update))
        message_id = _opaque_message_id(update.opaque)
        if message_id is not None:
            claimed_by.setdefault(update.wamid, (message_id, channel.pk))
    locked = _lock_messages(list(by_wamid), {wamid: pk for wamid, (pk, _) in claimed_by.items()})
    messages = {message.wamid: message for message in locked.values() if message.wamid}
    adopted: list[Message] = []
    for wamid, (message_id, channel_id) in claimed_by.items():
        message = locked.get(message_id)
        if wamid in messages or message is None or message.wamid:
            continue
        if message.direction == Message.Direction.OUTBOUND and message.conversation.channel_id == channel_id:
            _adopt(message, wamid)
            messages[wamid] = message
            adopted.append(message)
    adopted_ids = {message.pk for message in adopted}
    earlier = _pending_for(adopted)
    pending: list[PendingStatus] = []
    changed: list[Message] = []
    for wamid, items in by_wamid.items():
        message = messages.get(wamid)
        if message is None:
            pending += [
                PendingStatus(
                    wamid=wamid, status=update.status, timestamp=update.timestamp, payload=update.raw
                )
                for _, update in items
            ]
            continue
        if _merge(message, earlier.get(wamid, []) + [u for _, u in items]) or message.pk in adopted_ids:
            changed.append(message)
    if pending:
        PendingStatus.objects.bulk_create(pending)
    if earlier:
        PendingStatus.objects.filter(wamid__in=list(earlier)).delete()
    if adopted:
        update_rows(Message, adopted, [*STATUS_FIELDS, *ADOPTED_FIELDS])
    if rest := [message for message in changed if message.pk not in adopted_ids]:
        update_rows(Message, rest, STATUS_FIELDS)
    if changed:
        events.publish_events([_updated_event(message) for message in changed])
    _record_recipients(
        [
            (channel, messages[wamid], update)
            for channel, update in valid
            if (wamid := update.wamid) in messages
        ]
    )


# What adopting a wamid writes besides the statuses.
ADOPTED_FIELDS = ["wamid", "send_started_at"]


def _opaque_message_id(opaque: str) -> int | None:
    from whatsapp.delivery import OPAQUE_PREFIX  # delivery imports the services package

    value = opaque.removeprefix(OPAQUE_PREFIX)
    if value == opaque or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def lock_sql() -> str:
    """_lock_messages's statement; params: the named ids, the wamids they are about to get, the round's
    wamids, the named ids again. Both conditions are on indexed columns (a bitmap OR of two index scans):
    an OR with the joined list instead read the whole table."""
    return (
        f"SELECT m.id FROM {Message._meta.db_table} m "
        "LEFT JOIN unnest(%s::bigint[], %s::text[]) AS c(id, wamid) ON c.id = m.id "
        "WHERE m.wamid = ANY(%s::text[]) OR m.id = ANY(%s::bigint[]) "
        "ORDER BY COALESCE(m.wamid, c.wamid), m.id FOR UPDATE OF m"
    )


def _lock_messages(wamids: list[str], claimed: dict[str, int]) -> dict[int, Message]:
    """The messages with these wamids and those named by id (for a wamid not stored yet), locked in one
    statement in wamid order, a message named by id taking the place of the wamid it is about to get; by
    id. A message whose result write was in progress is read as that write left it."""
    with connection.cursor() as cursor:
        cursor.execute(lock_sql(), [list(claimed.values()), list(claimed), wamids, list(claimed.values())])
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return {}
    return Message.objects.select_related("conversation").only(*ROUND_FIELDS).in_bulk(ids)


# What a round reads of its messages: what it merges and writes, and what the realtime events and the
# recipients' ids need. Not the rest (a message's payload is most of a row and of its decoding).
ROUND_FIELDS = [
    "id",
    "wamid",
    "direction",
    "type",
    *STATUS_FIELDS,
    *ADOPTED_FIELDS,
    "conversation__id",
    "conversation__channel_id",
    "conversation__contact_id",
    "conversation__assignee_id",
    "conversation__team_id",
    "conversation__status",
]


def _adopt(message: Message, wamid: str) -> None:
    """Meta accepted the message as `wamid` before we stored its answer (not saved). One failed as
    interrupted (a worker died mid-send) was sent after all: its statuses take it on from queued."""
    from whatsapp.delivery import INTERRUPTED_TITLE

    message.wamid = wamid
    message.send_started_at = None
    if message.status == Message.Status.FAILED and message.error_title == INTERRUPTED_TITLE:
        message.status = Message.Status.QUEUED
        message.error_title = ""


def _pending_for(messages: list[Message]) -> dict[str, list[parsing.StatusUpdate]]:
    """The statuses kept pending for these messages' wamids (they came before anything named the
    message), as status updates."""
    if not messages:
        return {}
    found: dict[str, list[parsing.StatusUpdate]] = {}
    for kept in PendingStatus.objects.filter(wamid__in=[m.wamid for m in messages]).order_by(
        "timestamp", "id"
    ):
        update = replace(
            parsing.parse_status(kept.payload), wamid=kept.wamid, status=kept.status, timestamp=kept.timestamp
        )
        found.setdefault(kept.wamid, []).append(update)
    return found


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
