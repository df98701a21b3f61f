"""Shared fixtures: two tenants (alpha, beta) created once per session through the onboarding service,
and an outsider (a user of neither). Tests run in a transaction that is rolled back.

Python clients connect to 127.0.0.1 and send the tenant's Host header (Python's resolver does not
resolve *.localhost).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("DJANGO_ENV", "test")

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tenants.db import connection

PASSWORD = "Sturdy-Pass-42"
# Waits on other processes (a live server, workers, the sandbox) are bounds, not timing assertions: boots
# and jobs on a shared CI machine can be slow.
WAIT_SECONDS = 60.0


def wait_until(check: Callable[[], Any], *, what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    from onboarding.services import onboard_tenant
    from tenants.management.commands.migrate_platform import ensure_template_schema
    from tenants.models import Tenant

    with django_db_blocker.unblock():
        ensure_template_schema()
        for slug, name in (("alpha", "Alpha Ltd"), ("beta", "Beta GmbH")):
            if not Tenant.objects.filter(slug=slug).exists():
                onboard_tenant(
                    slug=slug, name=name, owner_email=f"owner@{slug}.test", owner_password=PASSWORD
                )
        connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _reset_schema() -> Iterator[None]:
    from tenants.middleware import forget_tenants

    yield
    connection.set_schema_to_public()
    # A test's rolled-back tenant change must not outlive it in the host cache.
    forget_tenants()


@pytest.fixture
def tenant_a(db: None) -> Any:
    from tenants.models import Tenant

    return Tenant.objects.get(slug="alpha")


@pytest.fixture
def tenant_b(db: None) -> Any:
    from tenants.models import Tenant

    return Tenant.objects.get(slug="beta")


def host_of(tenant: Any) -> str:
    return f"{tenant.slug}.localhost"


@pytest.fixture
def client_a(tenant_a: Any) -> Client:
    return Client(HTTP_HOST=host_of(tenant_a))


@pytest.fixture
def client_b(tenant_b: Any) -> Client:
    return Client(HTTP_HOST=host_of(tenant_b))


@pytest.fixture
def public_client(db: None) -> Client:
    return Client(HTTP_HOST="localhost")


def make_agent(tenant: Any, *, email: str, role: str = "agent") -> Any:
    from crm.services import create_agent

    with schema_context(tenant.schema_name):
        return create_agent(email=email, password=PASSWORD, role=role, name=email.split("@")[0].title())


@pytest.fixture
def owner_a(tenant_a: Any) -> Any:
    from django.contrib.auth import get_user_model

    with schema_context(tenant_a.schema_name):
        return get_user_model().objects.get(email="owner@alpha.test")


@pytest.fixture
def owner_b(tenant_b: Any) -> Any:
    from django.contrib.auth import get_user_model

    with schema_context(tenant_b.schema_name):
        return get_user_model().objects.get(email="owner@beta.test")


@pytest.fixture
def outsider(db: None) -> Any:
    """A platform user in the public schema: a member of no tenant."""
    from django.contrib.auth import get_user_model

    with schema_context("public"):
        return get_user_model().objects.create_user(
            username="outsider@example.test", email="outsider@example.test", password=PASSWORD
        )


def login(client: Client, tenant: Any, user: Any) -> Client:
    with schema_context(tenant.schema_name):
        client.force_login(user)
    return client


@pytest.fixture
def committed_db(django_db_blocker: Any) -> Iterator[None]:
    """Autocommit access for tests whose other threads (worker, socket) must see the data.

    No rollback happens: the test deletes what it creates.
    """
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()
