"""Knowledge jobs, on their own queue: indexing a large PDF never delays inbound or outbound messages."""

from __future__ import annotations

import dramatiq
import structlog

import tenants.jobs  # noqa: F401  (binds the actors below to the project's broker)
from knowledge import services
from knowledge.errors import MESSAGES

log = structlog.get_logger("knowledge")


@dramatiq.actor(queue_name="knowledge", max_retries=0, time_limit=30 * 60 * 1000)
def index_source_job(source_id: int) -> None:
    try:
        services.index_source(source_id=source_id)
    except Exception:
        # A bug or an outage must not leave the source "processing" forever: it fails, and says so.
        log.exception("knowledge_index_crashed", source=source_id)
        services._fail(source_id, "index_error", MESSAGES["index_error"])
        raise
