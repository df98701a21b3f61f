"""The AI agent's job, on its own queue ("ai"): inbound processing never waits for it, and a slow LLM never
delays agent replies or bulk sends."""

from __future__ import annotations

import dramatiq

import tenants.jobs  # noqa: F401  (binds the actor below to the project's broker)
from knowledge import agent


# No retries: the job hands the conversation over itself on any failure (reason `error`), so a retry
# could only answer twice.
@dramatiq.actor(queue_name="ai", max_retries=0, time_limit=120_000)
def answer_with_ai(message_id: int) -> None:
    agent.answer_inbound(message_id=message_id)
