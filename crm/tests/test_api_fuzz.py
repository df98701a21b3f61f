"""Schemathesis against the schema we serve at /api/schema/: generated requests, valid and invalid, to
every operation of the API (CRM and conversations) with an owner's key. No answer may be a 5xx, and every
answer must match the schema (status code, content type, body).

In-process through Django's test handler (no server, no network) and inside each test's transaction, so
nothing it writes outlives it. Bounded for CI: a few derandomized examples per operation, no deadline.
Failures print a reproducing `curl`; turn each into a regression test beside the endpoint's tests.

Each operation is its own pytest test (its own transaction and seeded objects), parametrized here rather
than with schemathesis' `pytest.from_fixture`, whose runner does not work with pytest 9 (it rewrites
`node._nodeid`, which pytest 9 no longer has).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from django.test.client import ClientHandler
from django.utils import timezone
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import host_of
from crm import services
from crm.tests.helpers import issue_key

# A deeper run locally: API_FUZZ_EXAMPLES=200 pytest crm/tests/test_api_fuzz.py
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def operations() -> list[tuple[str, str]]:
    """Every (path, method) of the API, from the same generator the schema view uses (collection has no
    database; the test itself loads the served schema)."""
    from drf_spectacular.generators import SchemaGenerator

    spec = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]


def django_wsgi_app() -> Any:
    """WSGI over Django's test handler: unlike config.wsgi's, it leaves the test's connection (and its
    transaction) open after each request, as django.test.Client does."""
    handler = ClientHandler(enforce_csrf_checks=False)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        response = handler(environ)
        headers = list(response.items())
        headers += [("Set-Cookie", c.output(header="").strip()) for c in response.cookies.values()]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response

    return app


@pytest.fixture
def fuzz_headers(tenant_a: Any) -> dict[str, str]:
    return {"Host": host_of(tenant_a), "Authorization": f"Bearer {issue_key(tenant_a, role='owner')}"}


_served: dict[str, Any] = {}


@pytest.fixture
def api_schema(fuzz_headers: dict[str, str]) -> Any:
    # The served schema is the same for every tenant and test: fetched once per session.
    if "schema" not in _served:
        _served["schema"] = schemathesis.openapi.from_wsgi(
            "/api/schema/",
            django_wsgi_app(),
            headers={**fuzz_headers, "Accept": "application/vnd.oai.openapi+json"},
        )
    return _served["schema"]


@pytest.fixture
def existing_ids(tenant_a: Any, owner_a: Any) -> dict[str, int]:
    """One object of each resource, linked the way real data is (a pipeline with a deal, a contact with
    a company, tags, notes, a conversation...), so `{id}` operations also reach real objects and their
    rules (in use, duplicates, merges), not only 404s."""
    from conversations.models import Conversation, Macro, Message, SlaPolicy

    with schema_context(tenant_a.schema_name):
        services.save_attribute_definition(key="tier", label="Tier", type="choice", choices=["gold"])
        definition = services.save_attribute_definition(key="score", label="Score", type="number")
        company = services.save_company(name="Acme", domain="acme.test")
        tag = services.save_tag(name="vip")
        contact = services.create_contact(phone="+14155550100", name="Ada", company=company, tags=[tag])
        services.create_contact(phone="+14155550101", name="Grace")
        note = services.add_note(contact=contact, body="Met at the fair", author=owner_a)
        pipeline = services.create_pipeline(name="Sales")
        services.create_pipeline(name="Partners")
        deal = services.create_deal(title="Big one", pipeline=pipeline, contact=contact, by=owner_a)
        task = services.create_task(title="Call back", contact=contact, deal=deal, created_by=owner_a)
        agent = owner_a.agent
        team = services.save_team(name="Support", member_ids=[agent.pk])
        upload = services.start_contact_import(
            filename="in.csv", content="phone,name\n+14155550102,Linus\nnot a phone,Nobody\n", created_by=None
        )
        services.run_contact_import(contact_import=upload)
        conversation = Conversation.objects.create(contact=contact)
        message = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            type=Message.Type.TEXT,
            text="Hello",
            status=Message.Status.FAILED,
            timestamp=timezone.now(),
        )
        macro = Macro.objects.create(name="Resolve", actions=[{"type": "status", "status": "resolved"}])
        policy = SlaPolicy.objects.create(name="Default", first_response_minutes=30)
        return {
            "agents": agent.pk,
            "attribute-definitions": definition.pk,
            "companies": company.pk,
            "contact-imports": upload.pk,
            "contacts": contact.pk,
            "conversations": conversation.pk,
            "deals": deal.pk,
            "macros": macro.pk,
            "messages": message.pk,
            "notes": note.pk,
            "pipelines": pipeline.pk,
            "settings": policy.pk,  # the only {id} under settings/: sla-policies/{id}/
            "stages": deal.stage_id,
            "tags": tag.pk,
            "tasks": task.pk,
            "teams": team.pk,
        }


@pytest.mark.parametrize(("path", "method"), operations(), ids=lambda v: v)
def test_no_generated_request_gets_a_server_error_or_an_answer_outside_the_schema(
    path: str, method: str, api_schema: Any, fuzz_headers: dict[str, str], existing_ids: dict[str, int]
) -> None:
    operation = api_schema[path][method]
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(mode) for mode in modes]
    resource = path.removeprefix("/api/v1/").split("/")[0]
    if "{id}" in path and resource in existing_ids:
        strategies += [
            operation.as_strategy(mode, path_parameters={"id": existing_ids[resource]}) for mode in modes
        ]
    cases = st.one_of(*strategies)

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=fuzz_headers, checks=CHECKS)

    check()
