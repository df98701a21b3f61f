"""Connecting a number is an audit event of the tenant that connected it."""

from __future__ import annotations

from django.test import RequestFactory
from django_tenants.utils import schema_context

from core import audit
from core.models import AuditEvent
from whatsapp.testing import PNID_A, WABA_A, connect_number


def test_connecting_a_number_records_who_connected_which_number(tenant_a, owner_a, sandbox):
    request = RequestFactory().post("/", REMOTE_ADDR="198.51.100.77")
    request.user = owner_a
    with audit.request_context(request):
        channel = connect_number(sandbox, tenant_a, PNID_A, WABA_A, "token-alpha")
    with schema_context("alpha"):
        events = list(AuditEvent.objects.filter(action="number.connected"))
        stored = str(AuditEvent.objects.filter(action="number.connected").values().get())
    assert len(events) == 1
    event = events[0]
    assert (event.actor_label, event.ip) == ("owner@alpha.test", "198.51.100.77")
    assert (event.target_id, event.details) == (str(channel.pk), {"phone_number_id": PNID_A})
    assert "token-alpha" not in stored
    with schema_context("beta"):
        assert not AuditEvent.objects.filter(action="number.connected").exists()
