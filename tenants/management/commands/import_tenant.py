"""`manage.py import_tenant --archive path [--slug new] [--replace]`: restore an export_tenant archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from tenants.backup import import_tenant


class Command(BaseCommand):
    help = (
        "Restore a tenant archive under its own slug or a new one (--replace overwrites an existing tenant)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--archive", required=True, help="The archive written by export_tenant.")
        parser.add_argument("--slug", help="Restore under this slug (default: the archive's).")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Overwrite an existing tenant of that slug (its data is lost).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        archive = Path(options["archive"])
        if not archive.is_file():
            raise CommandError(f"No such archive: {archive}")
        try:
            result = import_tenant(archive=archive, slug=options.get("slug"), replace=options["replace"])
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        verb = "Replaced" if result.replaced else "Imported"
        self.stdout.write(
            f"{verb} {result.tenant.slug} from {archive} (exported from {result.manifest['tenant']['slug']})"
        )
