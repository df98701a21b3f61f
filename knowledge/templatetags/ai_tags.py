"""The AI agent in the inbox's templates (conversations' templates load these tags by name; the Python
dependency still points from knowledge to conversations): the sources under an AI answer, the one-click
"Save as FAQ" under an agent's answer after a handoff, and the copilot bar in the composer."""

from __future__ import annotations

from typing import Any

from django import template

from knowledge import copilot
from knowledge.models import AIHandoff, AIReply

register = template.Library()


def _conversation_cache(context: template.Context, conversation_id: int) -> dict[str, Any]:
    """One query per thread render for the AI replies and handoffs of a conversation, not one per bubble."""
    root = context.dicts[0]
    caches = root.setdefault("_ai_thread_cache", {})
    if conversation_id not in caches:
        replies = {r.message_id: r for r in AIReply.objects.filter(conversation_id=conversation_id)}
        first_handoff = (
            AIHandoff.objects.filter(conversation_id=conversation_id)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        caches[conversation_id] = {"replies": replies, "first_handoff": first_handoff}
    return caches[conversation_id]  # type: ignore[no-any-return]


@register.inclusion_tag("knowledge/_ai_bubble.html", takes_context=True)
def ai_bubble(context: template.Context, m: Any) -> dict[str, Any]:
    """Under an outbound text: the AI's sources, or for an agent's answer after a handoff, "Save as FAQ"."""
    if m.direction != "out" or m.type != "text":
        return {"m": m}
    cache = _conversation_cache(context, m.conversation_id)
    reply = cache["replies"].get(m.pk)
    handed_over = cache["first_handoff"]
    can_learn = bool(m.sender_id and handed_over is not None and m.timestamp >= handed_over)
    return {"m": m, "ai_reply": reply, "can_learn": can_learn}


@register.inclusion_tag("knowledge/_copilot.html")
def copilot_bar(conversation: Any) -> dict[str, Any]:
    return {"conversation": conversation, "available": copilot.available()}


@register.inclusion_tag("knowledge/_ai_report.html")
def ai_report(start: Any, end: Any) -> dict[str, Any]:
    from knowledge.ai_reports import ai_report as build

    return {"ai": build(start=start, end=end)}
