"""The tenant admin's view of WAHA numbers: their sessions (read-only: the page Settings → WhatsApp numbers →
Link with QR code changes them, through waha.sessions) and the raw webhook events, which a failed one can
be processed again from (idempotent: a message is stored once by its WAHA id)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import ngettext

from tenants.db import connection
from waha.events import enqueue_events
from waha.models import WahaEvent, WahaSession


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WahaSession)
class WahaSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "session",
        "channel",
        "status",
        "status_changed_at",
        "needs_attention",
        "last_activity_at",
    ]
    list_filter = ["status", "needs_attention"]
    list_select_related = ["channel"]
    exclude = ["api_key_encrypted"]


@admin.register(WahaEvent)
class WahaEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "event", "status", "attempts", "processed_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name if f.name != "body" else "body_text" for f in WahaEvent._meta.fields]
    actions = ["process_again"]

    @admin.display(description="Body")
    def body_text(self, obj: WahaEvent) -> str:
        raw = bytes(obj.body or b"")
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            text = raw.decode("utf-8", errors="replace")
        return format_html('<pre class="webhook-body">{}</pre>', text)

    @admin.action(description="Process the selected failed events again")
    def process_again(self, request: HttpRequest, queryset: QuerySet[WahaEvent]) -> None:
        ids = list(queryset.filter(status=WahaEvent.Status.FAILED).values_list("pk", flat=True))
        if ids:
            WahaEvent.objects.filter(pk__in=ids).update(
                status=WahaEvent.Status.PENDING, attempts=0, next_attempt_at=None, error=""
            )
            enqueue_events(event_ids=ids, schema=connection.schema_name)
        self.message_user(
            request,
            ngettext("Queued %d failed event.", "Queued %d failed events.", len(ids)) % len(ids)
            + (" Events that did not fail are left as they are." if len(ids) < queryset.count() else ""),
        )
