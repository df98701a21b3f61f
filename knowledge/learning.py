"""Learning from agents: after the AI agent handed a conversation over, an agent's answer can be saved as an
FAQ suggestion in one click (question: the customer's message it answered; answer: the agent's reply). It
is stored pending; owners and admins approve it in Settings → AI → Knowledge, after which it is indexed
and the next customer gets it from the AI."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from conversations.models import Message
from conversations.selectors import Viewer, get_visible_conversation
from core.errors import ServiceError
from knowledge import services
from knowledge.models import AIHandoff, Faq


@transaction.atomic
def suggest_faq(*, viewer: Viewer, conversation_id: Any, message_id: int) -> Faq:
    conversation = get_visible_conversation(viewer, conversation_id)
    reply = (
        Message.objects.filter(
            pk=message_id,
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            type=Message.Type.TEXT,
            sender__isnull=False,
        )
        .exclude(text="")
        .first()
    )
    if reply is None:
        raise ServiceError(
            "invalid_message",
            "Only an agent's text reply in this conversation can be saved.",
            field="message_id",
        )
    handoff = (
        AIHandoff.objects.filter(conversation=conversation, created_at__lte=reply.timestamp)
        .order_by("-created_at")
        .first()
    )
    if handoff is None:
        raise ServiceError("not_handed_over", "The AI agent did not hand this conversation over.", status=409)
    question = (
        Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            type=Message.Type.TEXT,
            timestamp__lte=reply.timestamp,
        )
        .exclude(text="")
        .order_by("-timestamp", "-id")
        .first()
    )
    if question is None:
        raise ServiceError("no_question", "The customer asked nothing before this reply.")
    existing = Faq.objects.filter(
        question=" ".join(question.text.split())[:500], answer=reply.text.strip()
    ).first()
    if existing is not None:  # a second click
        return existing
    return services.create_faq(
        question=question.text[:500], answer=reply.text[:4000], status=Faq.Status.PENDING, user=viewer.user
    )
