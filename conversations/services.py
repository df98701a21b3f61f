"""Writes for conversations and messages. Each write that others should see calls conversations.events."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------
# Messages: inbound storage, outbound queueing and sending, statuses (the WhatsApp channel's side).
# ---------------------------------------------------------------------------------------------------


# (messages section ends)


# ---------------------------------------------------------------------------------------------------
# Conversation workflow: assignment, status, snooze, tags, unread, bot handover (the inbox's side).
# ---------------------------------------------------------------------------------------------------


# (workflow section ends)
