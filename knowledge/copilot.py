"""The copilot in the composer: suggest a reply from the conversation and the knowledge, summarise the
conversation, translate a customer's message, rewrite a draft. It needs the tenant's LLM (none: 409
llm_not_configured, and the composer hides it) and returns text for the agent to edit: it never sends.
Only for a conversation the viewer sees (get_visible_conversation: 404 otherwise)."""

from __future__ import annotations

from typing import Any

from conversations.models import Message
from conversations.selectors import Viewer, get_visible_conversation
from core.errors import ServiceError
from knowledge import llm
from knowledge.agent import LLM_PASSAGES, build_messages
from knowledge.ai_settings import llm_config, load_agent_settings
from knowledge.models import AgentSettings
from knowledge.retrieval import search

ACTIONS = ("suggest", "summarise", "translate", "rewrite")
STYLES = ("shorter", "friendlier", "formal")
TRANSCRIPT_MESSAGES = 20
LANGUAGES = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "fr": "French",
    "de": "German",
    "it": "Italian",
}


def available() -> bool:
    """Whether the composer shows the copilot: only with an LLM configured. One query, no row created:
    the composer renders with every thread."""
    return (
        AgentSettings.objects.filter(pk=1, llm_enabled=True)
        .exclude(llm_base_url="")
        .exclude(llm_model="")
        .exists()
    )


def _config() -> llm.LLMConfig:
    config = llm_config(load_agent_settings())
    if config is None:
        raise ServiceError(
            "llm_not_configured", "The copilot needs an LLM: set one in Settings → AI.", status=409
        )
    return config


def transcript(conversation: Any, limit: int = TRANSCRIPT_MESSAGES) -> str:
    rows = list(
        Message.objects.filter(conversation=conversation)
        .exclude(type__in=[Message.Type.SYSTEM, Message.Type.NOTE])
        .exclude(text="")
        .order_by("-timestamp", "-id")[:limit]
    )
    lines = []
    for message in reversed(rows):
        who = "Customer" if message.direction == Message.Direction.INBOUND else "Business"
        lines.append(f"{who}: {message.text.strip()}")
    return "\n".join(lines)


def run(
    *,
    viewer: Viewer,
    conversation_id: Any,
    action: str,
    draft: str = "",
    message_id: int | None = None,
    style: str = "shorter",
    language: str = "en",
) -> llm.ChatResult:
    conversation = get_visible_conversation(viewer, conversation_id)
    if action not in ACTIONS:
        raise ServiceError("invalid_action", f"Unknown copilot action: {action}.", field="action")
    config = _config()
    if action == "suggest":
        latest = (
            Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
            .exclude(text="")
            .order_by("-timestamp", "-id")
            .first()
        )
        if latest is None:
            raise ServiceError("nothing_to_answer", "The customer has not written anything to answer.")
        passages = search(latest.text, limit=LLM_PASSAGES)
        messages = build_messages(
            latest.text, passages, load_agent_settings().instructions, history=transcript(conversation)
        )
        result = llm.chat(config, messages, json_mode=True)
        text = str((result.data or {}).get("answer") or "").strip()
        result.text = text
        return result
    if action == "summarise":
        history = transcript(conversation)
        if not history:
            raise ServiceError("nothing_to_summarise", "The conversation has no messages yet.")
        messages = [
            {
                "role": "system",
                "content": "Task: summarise\nSummarise this customer conversation for a "
                "colleague in at most three short lines: what the customer wants, what was answered, what is "
                "still open.",
            },
            {"role": "user", "content": history},
        ]
    elif action == "translate":
        message = (
            Message.objects.filter(
                pk=message_id, conversation=conversation, direction=Message.Direction.INBOUND
            )
            .exclude(text="")
            .first()
            if message_id
            else None
        )
        if message is None:
            raise ServiceError(
                "invalid_message", "Choose a message of the customer to translate.", field="message_id"
            )
        code = (language or "en").lower()
        if code not in LANGUAGES:
            raise ServiceError("invalid_language", "Unknown language.", field="language")
        messages = [
            {
                "role": "system",
                "content": f"Task: translate to {code}\nTranslate the customer's message "
                f"into {LANGUAGES[code]}. Answer with the translation only.",
            },
            {"role": "user", "content": message.text},
        ]
    else:
        text = (draft or "").strip()
        if not text:
            raise ServiceError("empty_draft", "Write a draft to rewrite.", field="draft")
        if style not in STYLES:
            raise ServiceError("invalid_style", f"Style must be one of: {', '.join(STYLES)}.", field="style")
        messages = [
            {
                "role": "system",
                "content": f"Task: rewrite-{style}\nRewrite the agent's draft reply to a "
                f"customer to be {style}, keeping its meaning and language. Answer with the new text only.",
            },
            {"role": "user", "content": text},
        ]
    return llm.chat(config, messages, temperature=0.3)
