"""Retention of WhatsApp bookkeeping rows, run by the scheduler's `whatsapp_cleanup` job.

Kept apart from services.py's ingestion: these writes only ever delete rows nothing will read again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from tenants.models import WebhookEvent
from whatsapp.models import PendingStatus

DELETE_BATCH = 5000


def delete_stale_pending_statuses(*, older_than: dt.datetime, batch: int = DELETE_BATCH) -> int:
    """In the active tenant schema: statuses whose message never arrived. Meta redelivers a message
    webhook for up to 7 days, so past the retention the message is not coming."""
    return _delete_in_batches(PendingStatus.objects.filter(created_at__lt=older_than), batch=batch)


def delete_processed_webhook_events(*, older_than: dt.datetime, batch: int = DELETE_BATCH) -> int:
    """In the public schema: raw events processed before `older_than`. Pending ones still await
    processing; unrouted and failed ones stay for the platform admin, who may replay them."""
    stale = WebhookEvent.objects.filter(
        status=WebhookEvent.Status.PROCESSED, received_at__lt=older_than
    ).filter(
        # An old event replayed lately counts from its last processing.
        Q(processed_at__isnull=True) | Q(processed_at__lt=older_than)
    )
    return _delete_in_batches(stale, batch=batch)


def _delete_in_batches(queryset: QuerySet[Any], *, batch: int) -> int:
    """DELETE the next `batch` matching rows until fewer are left: one short statement per batch, never
    a lock on a day of rows at once. Raw SQL because django-tenants listens to every model's
    post_delete, which makes QuerySet.delete() load each row first (webhook bodies of up to 3 MB)."""
    meta = queryset.model._meta
    table = connection.ops.quote_name(meta.db_table)
    pk = connection.ops.quote_name(meta.pk.column)
    ids_sql, params = queryset.order_by().values("pk")[:batch].query.sql_with_params()
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE {pk} IN ({ids_sql})", params)
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted
