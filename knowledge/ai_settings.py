"""The AI agent's settings (Settings → AI and `/api/v1/ai/settings/`): reading them, changing them, and the
LLM configuration they give. The API key is write-only: stored encrypted, never returned or rendered."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from conversations import bot
from core import audit, crypto
from core.errors import ServiceError
from knowledge.llm import LLMConfig, LLMError, check_base_url
from knowledge.models import AgentSettings

MAX_REPLIES_LIMIT = 50
TEXT_LIMITS = {
    "instructions": 2000,
    "handoff_message": 1000,
    "blocked_topics": 2000,
    "llm_model": 100,
    "llm_base_url": 500,
}
EDITABLE = (
    "enabled",
    "instructions",
    "handoff_message",
    "hours",
    "max_replies",
    "threshold",
    "blocked_topics",
    "llm_enabled",
    "llm_base_url",
    "llm_model",
    "llm_api_key",
)


def load_agent_settings() -> AgentSettings:
    """The tenant's row (created off), read once per inbound batch like the bot's settings."""
    return bot.cached("ai_agent_settings", lambda: AgentSettings.objects.get_or_create(pk=1)[0])


def llm_config(settings: AgentSettings) -> LLMConfig | None:
    """The LLM the agent and the copilot use, or None (the default: no LLM)."""
    if not settings.llm_configured:
        return None
    try:
        key = crypto.decrypt(settings.llm_api_key_encrypted)
    except crypto.DecryptionError:
        return None
    return LLMConfig(base_url=settings.llm_base_url, model=settings.llm_model, api_key=key)


def _invalid(field: str, message: str, code: str = "invalid") -> ServiceError:
    return ServiceError(code, message, field=field)


def _clean(settings: AgentSettings, changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ServiceError("unknown_field", f"Unknown setting: {', '.join(unknown)}.", field=unknown[0])
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("enabled", "llm_enabled"):
            if not isinstance(value, bool):
                raise _invalid(name, "Must be true or false.")
        elif name == "hours":
            if value not in AgentSettings.Hours.values:
                raise _invalid(name, f"Must be one of: {', '.join(AgentSettings.Hours.values)}.")
        elif name == "max_replies":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLIES_LIMIT:
                raise _invalid(name, f"Must be a whole number from 1 to {MAX_REPLIES_LIMIT}.")
        elif name == "threshold":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
            ):
                raise _invalid(name, "Must be a number from 0 to 1, or null for the calibrated default.")
            value = None if value is None else float(value)
        elif name == "llm_api_key":
            if value is not None and not isinstance(value, str):
                raise _invalid(name, "Must be text.")
            value = (value or "").strip()
            if len(value) > 500 or any(ch.isspace() for ch in value):
                raise _invalid(name, "That is not an API key.")
        else:
            if not isinstance(value, str):
                raise _invalid(name, "Must be text.")
            value = value.strip()
            if len(value) > TEXT_LIMITS[name]:
                raise _invalid(name, f"At most {TEXT_LIMITS[name]} characters.")
            if name == "handoff_message" and not value:
                raise _invalid(name, "The customer must be told a person will answer.")
            if name == "llm_base_url" and value:
                try:
                    value = check_base_url(value)
                except LLMError as exc:
                    raise ServiceError(exc.code, exc.message, field=name) from exc
        clean[name] = value
    llm_enabled = clean.get("llm_enabled", settings.llm_enabled)
    if llm_enabled and not (
        clean.get("llm_base_url", settings.llm_base_url) and clean.get("llm_model", settings.llm_model)
    ):
        raise ServiceError("llm_not_configured", "An LLM needs its base URL and model.", field="llm_enabled")
    return clean


@transaction.atomic
def update_agent_settings(*, changes: dict[str, Any], by: Any = None) -> AgentSettings:
    """Change some settings (all checked before any is saved). Raises ServiceError (400) with the field."""
    settings = AgentSettings.objects.select_for_update().get_or_create(pk=1)[0]
    clean = _clean(settings, changes)
    changed: list[str] = []
    for name, value in clean.items():
        if name == "llm_api_key":
            settings.llm_api_key_encrypted = crypto.encrypt(value)
            changed.append("llm_api_key_encrypted")
        elif getattr(settings, name) != value:
            setattr(settings, name, value)
            changed.append(name)
    if changed:
        settings.save()
        shown = [("llm_api_key" if name.endswith("_encrypted") else name) for name in changed]
        audit.record(
            "settings.changed",
            actor=by,
            target=("ai_settings", 1, "AI agent"),
            details={"section": "ai", "fields": shown},
        )
    return settings


def as_dict(settings: AgentSettings) -> dict[str, Any]:
    """What the API and the page show: everything but the key, of which only whether one is set."""
    return {
        "enabled": settings.enabled,
        "instructions": settings.instructions,
        "handoff_message": settings.handoff_message,
        "hours": settings.hours,
        "max_replies": settings.max_replies,
        "threshold": settings.threshold,
        "effective_threshold": settings.effective_threshold,
        "blocked_topics": settings.blocked_topics,
        "llm_enabled": settings.llm_enabled,
        "llm_base_url": settings.llm_base_url,
        "llm_model": settings.llm_model,
        "llm_api_key_set": bool(settings.llm_api_key_encrypted),
        "llm_configured": settings.llm_configured,
        "updated_at": settings.updated_at,
    }
