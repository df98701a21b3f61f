"""Knowledge files stored before 0004 (knowledge/<year>/<month>/<schema>/…) move under the tenant's own
prefix, which its backup, export and purge walk."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tenants.utils import schema_context

from knowledge.models import Source
from tenants.db import connection

move_files = importlib.import_module("knowledge.migrations.0004_tenant_file_prefix").move_files


def test_old_files_move_under_the_tenant_prefix(tenant_a: Any) -> None:
    schema = tenant_a.schema_name
    old = default_storage.save(f"knowledge/2026/11/{schema}/old.txt", ContentFile(b"old layout"))
    with schema_context(schema):
        source = Source.objects.create(kind=Source.Kind.FILE, title="Old", file=old)
        current = Source.objects.create(kind=Source.Kind.TEXT, title="Pasted", text="no file")
        move_files(apps, SimpleNamespace(connection=connection))
        source.refresh_from_db()
        current.refresh_from_db()
    assert source.file.name.startswith(f"knowledge/{schema}/")
    with default_storage.open(source.file.name) as handle:
        assert handle.read() == b"old layout"
    assert not default_storage.exists(old)
    assert current.file.name == ""
    default_storage.delete(source.file.name)
