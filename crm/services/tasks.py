"""Tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from core.errors import ServiceError
from crm.models import Task

User = Any  # the tenant's auth user (django.contrib.auth.User)


TASK_FIELDS = ("title", "description", "due_at", "assignee", "contact", "deal")


def _apply_task_fields(task: Task, fields: Mapping[str, Any]) -> None:
    for field, value in fields.items():
        if field not in TASK_FIELDS:
            raise ServiceError("unknown_field", f"'{field}' cannot be set.", field=field)
        if field == "title":
            value = str(value or "").strip()
            if not value:
                raise ServiceError("invalid_title", "A task needs a title.", field="title")
        setattr(task, field, value)


def create_task(*, title: str, created_by: User | None = None, **fields: Any) -> Task:
    task = Task(created_by=created_by)
    _apply_task_fields(task, {"title": title, **fields})
    task.save()
    return task


def update_task(*, task: Task, done: bool | None = None, **fields: Any) -> Task:
    _apply_task_fields(task, fields)
    if done is not None and done != task.done:
        task.done = done
        task.done_at = timezone.now() if done else None
    task.save()
    return task


def complete_task(*, task: Task, done: bool = True) -> Task:
    return update_task(task=task, done=done)
