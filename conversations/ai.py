"""The AI agent's hook into the inbound round, so that conversations never imports the app that implements it.

`knowledge` registers an implementation in its AppConfig.ready(): `ai.register(KnowledgeAgent())`. The
bot (conversations.services.automation) asks it, after the welcome/away/rule replies, whether it takes
the message (`takes`: cheap, from per-batch cached settings; the agent is enabled, the message is text,
the hours fit) and, if so, `enqueue`s it: the agent answers in a job of its own queue, on commit, so the
inbound round never waits for it, and keeps the conversation meanwhile (it hands over itself when it
cannot answer). With nothing registered, or an agent that declines, the bot behaves as before.
"""

from __future__ import annotations

from typing import Any, Protocol


class AIAgent(Protocol):
    def is_enabled(self) -> bool:
        """Switched on for this tenant (decides whether a new conversation starts with the bot)."""

    def takes(self, *, message: Any) -> bool:
        """Whether it will answer this inbound message of a conversation whose bot is on."""

    def enqueue(self, *, message: Any) -> None:
        """Queue its answer to the message after the current transaction commits."""


_agent: AIAgent | None = None


def register(agent: AIAgent | None) -> None:
    global _agent
    _agent = agent


def agent() -> AIAgent | None:
    return _agent


def is_enabled() -> bool:
    return _agent is not None and _agent.is_enabled()


def take(*, message: Any) -> bool:
    """Hand the message to the agent if it takes it; True when it did."""
    if _agent is None or not _agent.takes(message=message):
        return False
    _agent.enqueue(message=message)
    return True
