"""Events for outgoing webhooks, so that the apps that cause them never import the app that delivers them.

`integrations` registers a sink in its AppConfig.ready(); conversations (conversations.events), crm
(contacts) and campaigns call `emit`. An event is handed to the sink only once the caller's transaction
commits (nothing is announced for a rolled-back change), with references (ids), not content: the sink
loads what it sends, and only when an endpoint subscribes to the event. With no sink registered, `emit`
does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.db import connection

EVENTS = (
    "message.created",
    "message.updated",
    "conversation.created",
    "conversation.assigned",
    "conversation.resolved",
    "contact.created",
    "contact.updated",
    "campaign.finished",
)

Sink = Callable[[list[tuple[str, dict[str, Any]]]], None]

_sink: Sink | None = None


def register(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def emit(event: str, refs: dict[str, Any]) -> None:
    emit_many([(event, refs)])


def emit_many(items: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Hand the events to the sink after the current transaction commits (at once in autocommit)."""
    sink = _sink
    if sink is None:
        return
    batch = [(event, refs) for event, refs in items if event in EVENTS]
    schema = connection.schema_name
    if not batch or schema == get_public_schema_name():
        return

    def deliver() -> None:
        # The caller may have left its tenant's schema by the time the outermost transaction commits
        # (a job that routes to a tenant inside schema_context): the sink runs in the schema of the event.
        with schema_context(schema):
            sink(batch)

    transaction.on_commit(deliver)
