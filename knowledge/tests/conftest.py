from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import schema_context


@pytest.fixture
def in_a(tenant_a: Any) -> Iterator[Any]:
    """The test body runs in tenant A's schema."""
    with schema_context(tenant_a.schema_name):
        yield tenant_a


@pytest.fixture
def in_b(tenant_b: Any) -> Iterator[Any]:
    with schema_context(tenant_b.schema_name):
        yield tenant_b


@pytest.fixture
def inline_jobs(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> None:
    """Jobs queued by the services run at once, in the test's transaction (knowledge.testing)."""
    from knowledge import testing

    settings.MEDIA_ROOT = str(tmp_path)
    testing.run_jobs_inline(monkeypatch)


# The AI agent's tests (helper fixtures in ai_fixtures.py) and the WhatsApp channel's, re-exported.
from knowledge.tests.ai_fixtures import _llm_server, knowledge_a, llm_sandbox  # noqa: E402, F401
from whatsapp.testing import (  # noqa: E402, F401
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    _sandbox_server,
    channel_a,
    channel_b,
    sandbox,
)
