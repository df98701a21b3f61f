"""Migrate everything: the public schema, the tenant template schema, then every tenant in parallel."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_exists

from tenants.db import connection


class Command(BaseCommand):
    help = "Migrate the public schema, the template schema new tenants are cloned from, and all tenants."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--executor", default="multiprocessing", choices=["standard", "multiprocessing"])

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_template_schema(verbosity=verbosity)
        call_command(
            "migrate_schemas",
            tenant=True,
            interactive=False,
            verbosity=verbosity,
            executor=options["executor"],
        )


def ensure_template_schema(*, verbosity: int = 0) -> None:
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{template}"')
    call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()
