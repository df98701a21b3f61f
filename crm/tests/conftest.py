from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context


@pytest.fixture
def in_a(tenant_a: Any) -> Any:
    """Run the test body's ORM work in tenant alpha's schema."""
    with schema_context(tenant_a.schema_name):
        yield tenant_a
