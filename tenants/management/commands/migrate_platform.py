"""Migrate everything: the public schema, the tenant template schema, then the tenants that are behind.

Tenants whose recorded migrations equal the template's are skipped without any introspection
(tenants.migrating); the others are migrated in parallel processes, each on its own, so one failure does
not stop the rest. Exit status 1 when any tenant failed; running it again retries only those still behind.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_exists

from tenants.db import connection
from tenants.migrating import migrate_tenants, recorder_checks_by_name


class Command(BaseCommand):
    help = "Migrate the public schema, the template schema new tenants are cloned from, and all tenants."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--jobs",
            type=int,
            default=None,
            help="Processes migrating tenants in parallel (default: TENANT_MULTIPROCESSING_MAX_PROCESSES).",
        )
        parser.add_argument(
            "--schema",
            action="append",
            dest="schemas",
            default=None,
            help="Only this tenant schema (repeatable); default: every tenant.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        jobs = options["jobs"]
        if jobs is None:
            jobs = settings.TENANT_MULTIPROCESSING_MAX_PROCESSES
        if jobs < 1:
            raise CommandError("--jobs must be at least 1")
        with recorder_checks_by_name():
            call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
            ensure_template_schema(verbosity=verbosity)
        report = migrate_tenants(
            options["schemas"],
            jobs=jobs,
            verbosity=verbosity,
            stdout=self.stdout,
            stderr=self.stderr,
        )
        if verbosity >= 1 or report.failed:
            self.stdout.write(f"migrate_platform: {report.summary()}")
        if report.failed:
            for schema, error in sorted(report.failed.items()):
                self.stderr.write(f"  {schema}: {error}")
            raise CommandError(
                f"{len(report.failed)} tenant(s) failed to migrate; the others are migrated. "
                "Fix the cause and run migrate_platform again: it retries only the tenants still behind."
            )


def ensure_template_schema(*, verbosity: int = 0) -> None:
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{template}"')
    call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()
