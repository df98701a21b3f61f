"""Events for outgoing webhooks, so that the apps that cause them never import the app that delivers them.

`integrations` registers a sink in its AppConfig.ready(); conversations (conversations.events), crm
(contacts) and campaigns call `emit`. An event is handed to the sink only once the caller's transaction
commits (nothing is announced for a rolled-back change), with references (ids), not content: the sink
loads what it sends, and only when an endpoint subscribes to the event. With no sink registered, `emit`
does nothing. Contact events go through `contact_changed` / `contacts_changed` (at most one per contact and
transaction; a contact created and then changed in it is announced as created) from every path that creates
or changes a contact; a bulk path gathers them with `collect_contact_events` and announces them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


class _ContactBatch:
    """The contact events of one transaction, handed over together when it commits: a contact created and
    then changed in the same transaction is announced once, as created."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.events: dict[int, str] = {}
        self.done = False

    def add(self, pk: int, created: bool) -> None:
        if created or pk not in self.events:
            self.events[pk] = "contact.created" if created else "contact.updated"

    def __call__(self) -> None:  # after commit: straight to the sink
        self.done = True
        sink = _sink
        if sink is not None and self.events:
            with schema_context(self.schema):
                sink([(event, {"contact": pk}) for pk, event in self.events.items()])


def contacts_changed(contacts: Iterable[Any], *, created: bool = False) -> None:
    """`contact.created` / `contact.updated` for these contacts after the current transaction commits, at
    most one per contact and transaction (every path that creates or changes a contact calls this or
    `contact_changed`). Reuses the transaction's pending batch only when that batch is discarded by every
    savepoint rollback that would undo this change; otherwise starts a new one."""
    pks = [contact.pk for contact in contacts if contact.pk is not None]
    collected = _collector.get()
    if collected is not None:
        for pk in pks:
            if created or pk not in collected:
                collected[pk] = "contact.created" if created else "contact.updated"
        return
    if not pks or _sink is None or connection.schema_name == get_public_schema_name():
        return
    if not connection.in_atomic_block:
        emit_many(("contact.created" if created else "contact.updated", {"contact": pk}) for pk in pks)
        return
    active = set(connection.savepoint_ids)
    batch = next(
        (
            func
            for sids, func, *_ in reversed(connection.run_on_commit)
            if isinstance(func, _ContactBatch)
            and not func.done
            and active <= sids
            and func.schema == connection.schema_name
        ),
        None,
    )
    if batch is None:
        batch = _ContactBatch(connection.schema_name)
        transaction.on_commit(batch)
    for pk in pks:
        batch.add(pk, created)


def contact_changed(contact: Any, *, created: bool = False) -> None:
    contacts_changed([contact], created=created)


_collector: ContextVar[dict[int, str] | None] = ContextVar("contact_events", default=None)


@contextmanager
def collect_contact_events() -> Iterator[dict[int, str]]:
    """Within the block, contact events are gathered (contact id → event) instead of announced: a bulk
    path (the CSV import) announces them together with `announce_contact_events`, and drops those of a
    row it rolled back."""
    collected: dict[int, str] = {}
    token = _collector.set(collected)
    try:
        yield collected
    finally:
        _collector.reset(token)


def announce_contact_events(collected: dict[int, str]) -> None:
    emit_many((event, {"contact": pk}) for pk, event in collected.items())
