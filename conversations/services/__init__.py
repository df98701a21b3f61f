"""Writes for conversations and messages, by concern (each write that others should see calls
conversations.events):

- reply: the one reply path (send_reply with a Draft); drafts: a draft's content and its checks;
  sending: the number's and the contact's rules; messages: the historical send_* wrappers
- start: starting a conversation; retry: retrying a failed message; reading: read receipts, typing
- inbound: inbound messages and statuses from a channel; automation: the bot's and consent replies
- workflow: assignment, status, snooze, tags, unread, bot handover, notes; contact_panel: the contact

Everything public is re-exported here: `from conversations.services import send_reply` and
`services.send_reply` are the way to call them.
"""

from conversations.errors import MessageRejected, WorkflowError
from conversations.rules import CUSTOMER_SERVICE_WINDOW, MEDIA_KINDS, TEXT_LIMIT
from conversations.services.automation import answer_as_bot, handle_consent_keywords
from conversations.services.contact_panel import (
    CONTACT_EVENT_LIMIT,
    edit_contact,
    note_contact,
    tag_contact,
    untag_contact,
)
from conversations.services.drafts import DRAFT_KINDS, Draft
from conversations.services.inbound import (
    CONVERSATION_INBOUND_FIELDS,
    STATUS_TIME_FIELD,
    InboundDraft,
    apply_message_status,
    merge_message_status,
    store_inbound_messages,
)
from conversations.services.messages import (
    send_interactive_message,
    send_media_message,
    send_reaction,
    send_template_message,
    send_text_message,
)
from conversations.services.reading import TYPING_INTERVAL_SECONDS, indicate_typing, mark_as_read
from conversations.services.reply import send_reply, set_reaction
from conversations.services.retry import retry_message
from conversations.services.sending import check_sendable, enqueue_send
from conversations.services.start import start_conversation
from conversations.services.workflow import (
    AS_LOADED,
    UNCHANGED,
    add_private_note,
    assign_conversation,
    hand_over_from_bot,
    mark_conversation_read,
    mark_conversation_unread,
    set_bot_active,
    set_conversation_status,
    set_conversation_tags,
    snooze_conversation,
    take_conversation,
    update_conversation,
    wake_snoozed_conversations,
)

__all__ = [
    "AS_LOADED",
    "CONTACT_EVENT_LIMIT",
    "CONVERSATION_INBOUND_FIELDS",
    "CUSTOMER_SERVICE_WINDOW",
    "DRAFT_KINDS",
    "MEDIA_KINDS",
    "STATUS_TIME_FIELD",
    "TEXT_LIMIT",
    "TYPING_INTERVAL_SECONDS",
    "UNCHANGED",
    "Draft",
    "InboundDraft",
    "MessageRejected",
    "WorkflowError",
    "add_private_note",
    "answer_as_bot",
    "apply_message_status",
    "assign_conversation",
    "check_sendable",
    "edit_contact",
    "enqueue_send",
    "hand_over_from_bot",
    "handle_consent_keywords",
    "indicate_typing",
    "mark_as_read",
    "mark_conversation_read",
    "mark_conversation_unread",
    "merge_message_status",
    "note_contact",
    "retry_message",
    "send_interactive_message",
    "send_media_message",
    "send_reaction",
    "send_reply",
    "send_template_message",
    "send_text_message",
    "set_bot_active",
    "set_conversation_status",
    "set_conversation_tags",
    "set_reaction",
    "snooze_conversation",
    "start_conversation",
    "store_inbound_messages",
    "tag_contact",
    "take_conversation",
    "untag_contact",
    "update_conversation",
    "wake_snoozed_conversations",
]
