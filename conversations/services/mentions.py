"""@mentions in private notes: `@` + an agent's e-mail (the composer's picker inserts it) names them.
Saving the note records a ConversationMention per agent named, which lets them open the conversation
(conversations.models.visibility_q), and notifies them (crm.services.notifications, kind "mention").
Only active agents of this workspace can be mentioned: a user of another tenant has no Agent row here."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse

from conversations.models import ConversationMention, Message
from conversations.services.common import person_name
from crm.services.notifications import notify

MENTION = re.compile(r"(?<![\w.+-])@([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
MAX_MENTIONS = 20


def mentioned_emails(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for match in MENTION.finditer(text or ""):
        seen.setdefault(match.group(1).rstrip(".").casefold(), None)
    return list(seen)[:MAX_MENTIONS]


def record_mentions(*, note: Message, author: Any) -> list[ConversationMention]:
    """The mentions of a just-saved note; the author mentioning themself is ignored."""
    emails = mentioned_emails(note.text)
    if not emails:
        return []
    match = Q()
    for email in emails:
        match |= Q(email__iexact=email)
    users = list(get_user_model().objects.filter(match, agent__isnull=False, is_active=True).distinct())
    author_id = getattr(author, "pk", None)
    users = [u for u in users if u.pk != author_id]
    if not users:
        return []
    ConversationMention.objects.bulk_create(
        [
            ConversationMention(
                conversation_id=note.conversation_id, note=note, user=u, mentioned_by_id=author_id
            )
            for u in users
        ],
        ignore_conflicts=True,
    )
    conversation = note.conversation
    who = person_name(author) if author_id else "Someone"
    notify(
        recipients=users,
        kind="mention",
        title=f"{who} mentioned you in a note",
        body=note.text[:300],
        url=reverse("inbox:conversation", args=[conversation.pk]),
        conversation=conversation,
    )
    return list(ConversationMention.objects.filter(note=note))
