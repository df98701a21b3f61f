"""Settings → Audit log (/settings/audit-log/): the workspace's audit events, newest first, filtered by
action, actor and dates, paged, and exported as CSV. For owners and admins; anyone else is answered 404,
as if the page did not exist (its existence tells an agent nothing they need)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from core import audit, csvsafe
from crm.models import Agent
from crm.selectors import role_of_user
from crm.views import View, _page, _slice

PAGE = "crm/settings/audit_log.html"
ADMIN_ROLES = frozenset({Agent.Role.OWNER.value, Agent.Role.ADMIN.value})


def admin_only(view: View) -> View:
    @functools.wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        role = role_of_user(request.user)
        if role not in ADMIN_ROLES:
            raise Http404
        request.crm_role = role  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapped


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *sorted(audit.ACTIONS.items(), key=lambda a: a[1])]
    )
    actor = forms.CharField(required=False, max_length=200, strip=True)
    since = forms.DateField(required=False, label="From")
    until = forms.DateField(required=False, label="To")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", forms.ValidationError("The end date is before the start.", code="range"))
        return data

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for core.audit.events: whole days in the site's time zone, `To` inclusive."""
        data = self.cleaned_data
        return {
            "action": data.get("action") or "",
            "actor": data.get("actor") or "",
            "since": _day_start(data["since"]) if data.get("since") else None,
            "until": _day_start(data["until"] + dt.timedelta(days=1)) if data.get("until") else None,
        }


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, dict[str, Any] | None]:
    """The filter form and core.audit.events' arguments; None when the form is invalid (the form says
    what is wrong, and no rows pretend to match it)."""
    form = AuditFilterForm(request.GET or None)
    if not form.is_bound:
        return form, {}
    return form, (form.filters() if form.is_valid() else None)


@admin_only
def audit_log(request: HttpRequest) -> HttpResponse:
    form, filters = _filtered(request)
    page = _page(request)
    events, has_next = _slice(audit.events(**filters), page) if filters is not None else ([], False)
    for event in events:
        event.action_label = audit.ACTIONS.get(event.action, event.action)  # type: ignore[attr-defined]
    context = {"nav": "settings", "form": form, "events": events, "page": page, "has_next": has_next}
    return render(request, PAGE, context, status=200 if filters is not None else 400)


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin_only
def audit_log_export(request: HttpRequest) -> HttpResponseBase:
    form, filters = _filtered(request)
    if filters is None:
        context = {"nav": "settings", "form": form, "events": [], "page": 1, "has_next": False}
        return render(request, PAGE, context, status=400)
    queryset = audit.events(**filters)
    # Exporting the log is itself an event, recorded before the file is read, so it is in the file.
    used = {name: value for name, value in filters.items() if value}
    audit.record("export.created", details={"kind": "audit_log", "filters": used})
    writer = csvsafe.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(audit.CSV_COLUMNS)
        for event in queryset.iterator(chunk_size=2000):
            yield writer.writerow(audit.csv_row(event))

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
