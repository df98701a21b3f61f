from __future__ import annotations

from typing import Any

from django.test import Client
from django_tenants.utils import schema_context

from conftest import host_of


def issue_key(tenant: Any, *, role: str = "admin", name: str = "test", user: Any = None) -> str:
    """An integration key with `role`; with `user` (or for the agent role, which only a person's key can
    have) a personal key of that user (a fresh agent when none is given)."""
    from conftest import make_agent
    from crm import services

    if user is None and role == "agent":
        user = make_agent(tenant, email=f"{name.replace(' ', '-')}.key-owner@{tenant.slug}.test").user
    with schema_context(tenant.schema_name):
        if user is not None:
            return services.create_api_key(name=name, kind="personal", user=user).raw
        return services.create_api_key(name=name, role=role).raw


def api_client(tenant: Any, key: str | None = None, **extra: Any) -> Client:
    headers = {"HTTP_HOST": host_of(tenant), **extra}
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return Client(**headers)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
