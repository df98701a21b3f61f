"""The audit log: one append-only table per schema (public holds platform events, each tenant schema its
own). Rows are written by core.audit.record only; nothing updates or deletes them, here (the queryset and
the model refuse) or in the database (a trigger refuses, see migration 0002)."""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from core.errors import ServiceError


class AppendOnlyError(ServiceError):
    status = 409

    def __init__(self) -> None:
        super().__init__("audit_log_append_only", "Audit events cannot be changed or deleted.")


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise AppendOnlyError


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        _refuse()

    def delete(self) -> NoReturn:  # type: ignore[override]
        _refuse()

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        _refuse()

    _raw_delete = _refuse  # type: ignore[assignment]


class AuditEvent(models.Model):
    """Who did what, when, from where. The actor is kept as an id and a label, never a foreign key: the
    row must outlive the user (and a platform user is in another schema than a tenant's rows)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["actor_label"], name="core_audit_actor_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        raise AppendOnlyError
