"""The owners' data export: contacts, conversations, messages and CSAT answers, each as CSV and as JSON,
in one zip, plus the datasets other apps register (`register_dataset`: the AI agent's knowledge sources
and FAQs, campaigns and their recipients, webhook endpoints without their secrets).

Streamed, not built in the background: the zip is written as the rows are read (server-side cursors,
ZIP64 entries of unknown size with data descriptors), so memory stays flat however big the tenant is,
the download starts at once, and no copy of the customers' data is ever stored (no file to expire, no
link to leak, no cleanup job). The price is a long request for a very large tenant; the operator's
full archive of a tenant is `manage.py export_tenant`.

Every CSV cell goes through core.csvsafe (a contact named `=HYPERLINK(...)` stays text). Conversations
and messages are read through the visibility rule (`visible_conversations`/`visible_messages`) like
every other surface; the export is for owners, who see everything, so nothing is filtered out today,
but a change of the rule cannot silently widen the export.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Q, QuerySet
from django_tenants.utils import schema_context

from conversations.models import CsatResponse
from conversations.selectors import Viewer, visible_conversations, visible_messages
from core import csvsafe
from crm.models import Contact

CHUNK_ROWS = 500
ITERATOR_CHUNK = 2000


@dataclass(frozen=True)
class Dataset:
    name: str
    columns: tuple[str, ...]
    rows: Callable[[Viewer], Iterable[Mapping[str, Any]]]


def _contacts(viewer: Viewer) -> Iterable[Mapping[str, Any]]:
    return (
        Contact.objects.order_by("id")
        .annotate(
            tag_names=ArrayAgg("tags__name", filter=Q(tags__isnull=False), default=[], order_by="tags__name")
        )
        .values(
            "id",
            "name",
            "phone",
            "wa_id",
            "email",
            "company__name",
            "tag_names",
            "attributes",
            "marketing_consent",
            "blocked",
            "last_inbound_at",
            "created_at",
            "updated_at",
        )
        .iterator(chunk_size=ITERATOR_CHUNK)
    )


def _conversations(viewer: Viewer) -> Iterable[Mapping[str, Any]]:
    return (
        visible_conversations(viewer)
        .order_by("id")
        .values(
            "id",
            "contact_id",
            "contact__name",
            "contact__phone",
            "status",
            "assignee__email",
            "team__name",
            "last_message_at",
            "first_response_at",
            "resolved_at",
            "created_at",
        )
        .iterator(chunk_size=ITERATOR_CHUNK)
    )


def _messages(viewer: Viewer) -> Iterable[Mapping[str, Any]]:
    return (
        visible_messages(viewer)
        .order_by("id")
        .values(
            "id",
            "conversation_id",
            "direction",
            "type",
            "text",
            "status",
            "wamid",
            "timestamp",
            "sender__email",
            "error_code",
            "error_title",
            "created_at",
        )
        .iterator(chunk_size=ITERATOR_CHUNK)
    )


def model_dataset(name: str, queryset: Callable[[], QuerySet[Any]], fields: tuple[str, ...]) -> Dataset:
    """A dataset of `fields` (ORM lookups; the column is the lookup with "__" as "_") of `queryset()`'s
    rows in id order: how an app adds its own tables to the export."""

    def rows(viewer: Viewer) -> Iterable[Mapping[str, Any]]:
        return queryset().order_by("id").values(*fields).iterator(chunk_size=ITERATOR_CHUNK)

    return Dataset(name, tuple(field.replace("__", "_") for field in fields), rows)


DATASETS = (
    Dataset(
        "contacts",
        (
            "id", "name", "phone", "wa_id", "email", "company", "tags", "attributes", "marketing_consent",
            "blocked", "last_inbound_at", "created_at", "updated_at",
        ),
        _contacts,
    ),
    Dataset(
        "conversations",
        (
            "id", "contact_id", "contact_name", "contact_phone", "status", "assignee", "team",
            "last_message_at", "first_response_at", "resolved_at", "created_at",
        ),
        _conversations,
    ),
    Dataset(
        "messages",
        (
            "id", "conversation_id", "direction", "type", "text", "status", "wamid", "timestamp",
            "sender", "error_code", "error_title", "created_at",
        ),
        _messages,
    ),
    model_dataset(
        "csat_responses",
        CsatResponse.objects.all,
        (
            "id", "conversation_id", "agent__email", "team__name", "score", "comment", "created_at",
            "answered_at",
        ),
    ),
)  # fmt: skip


_registered: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> None:
    """Add an app's dataset to the export (from its AppConfig.ready(); conversations imports no app above
    it). A name is registered once: the same name again replaces it."""
    if dataset.name in {d.name for d in DATASETS}:
        raise ValueError(f"The dataset '{dataset.name}' is one of the export's own.")
    _registered[dataset.name] = dataset


def datasets() -> tuple[Dataset, ...]:
    return DATASETS + tuple(_registered[name] for name in sorted(_registered))


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _record(dataset: Dataset, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row under the export's column names (the ORM's lookups renamed, in column order)."""
    values = [_plain(value) for value in row.values()]
    return dict(zip(dataset.columns, values, strict=True))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    if value is None:
        return ""
    return value


class _Sink:
    """A write-only, unseekable file that hands out what was written since the last `take`: zipfile
    then writes data descriptors instead of seeking back to patch each entry's header."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def export_chunks(*, viewer: Viewer, schema: str) -> Iterator[bytes]:
    """The zip, piece by piece, read in the tenant's schema."""
    sink = _Sink()
    with schema_context(schema), zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for dataset in datasets():
            with archive.open(f"{dataset.name}.csv", "w", force_zip64=True) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csvsafe.writer(text)
                writer.writerow(dataset.columns)
                for count, row in enumerate(dataset.rows(viewer), 1):
                    writer.writerow([_csv_cell(value) for value in _record(dataset, row).values()])
                    if count % CHUNK_ROWS == 0:
                        text.flush()
                        yield sink.take()
                text.flush()
                text.detach()
            yield sink.take()
            with archive.open(f"{dataset.name}.json", "w", force_zip64=True) as raw:
                raw.write(b"[")
                for count, row in enumerate(dataset.rows(viewer), 1):
                    prefix = b"\n" if count == 1 else b",\n"
                    raw.write(prefix + json.dumps(_record(dataset, row), ensure_ascii=False).encode())
                    if count % CHUNK_ROWS == 0:
                        yield sink.take()
                raw.write(b"\n]\n")
            yield sink.take()
    yield sink.take()


async def export_stream(*, viewer: Viewer, schema: str) -> AsyncIterator[bytes]:
    """The same, for the ASGI server: Django would read a sync iterator into memory whole before
    sending it. Each piece is made in the request's own sync thread (thread_sensitive)."""
    chunks = export_chunks(viewer=viewer, schema=schema)
    done = object()
    take = sync_to_async(lambda: next(chunks, done), thread_sensitive=True)
    while True:
        chunk = await take()
        if chunk is done:
            return
        if chunk:
            yield chunk  # type: ignore[misc]
