"""The default connection typed as django-tenants' wrapper (set_schema, set_tenant, schema_name...)."""

from typing import Any

from django.db import connection as _connection

# django-stubs types `connection` as the base wrapper, which lacks django-tenants' schema methods.
connection: Any = _connection
