from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations import selectors
from conversations.models import Conversation
from conversations.tests.conftest import make_conversation


def test_reports_count_per_day_and_compute_medians(tenant_a, owner_a):
    now = timezone.now()
    for minutes in (2, 4, 30):
        c = make_conversation(tenant_a, assignee=owner_a)
        with schema_context(tenant_a.schema_name):
            Conversation.objects.filter(pk=c.pk).update(
                first_response_at=c.created_at + dt.timedelta(minutes=minutes),
                first_response_by=owner_a,
                resolved_at=c.created_at + dt.timedelta(hours=1),
                status="resolved",
            )
    make_conversation(tenant_a)
    with schema_context(tenant_a.schema_name):
        today = timezone.localdate()
        report = selectors.conversation_report(
            start=today - dt.timedelta(days=2), end=today + dt.timedelta(days=1)
        )
    assert sum(report.opened) == 4 and sum(report.resolved) == 3
    assert report.median_first_response == dt.timedelta(minutes=4)
    assert abs(report.median_resolution - dt.timedelta(hours=1)) < dt.timedelta(seconds=1)
    owner_row = next(a for a in report.agents if a["resolved"])
    assert owner_row["resolved"] == 3 and owner_row["median_first_response"] == dt.timedelta(minutes=4)
    assert now


def test_the_reports_page_renders_a_chart_for_supervisors(client_a, tenant_a, owner_a):
    make_conversation(tenant_a)
    login(client_a, tenant_a, owner_a)
    response = client_a.get("/reports/?start=2026-01-01&end=2026-01-31")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="report-chart"' in html and "chart-4.6.1.umd.min.js" in html and 'id="report-data"' in html
    assert client_a.get("/reports/?start=garbage").status_code == 200


def test_agents_cannot_open_reports(client_a, tenant_a, agent_a):
    login(client_a, tenant_a, agent_a)
    assert client_a.get("/reports/").status_code == 403


def test_reports_of_another_tenant_need_a_session_there(client_b, tenant_a, owner_a):
    login(client_b, tenant_a, owner_a)
    assert client_b.get("/reports/").status_code == 302
