"""manage.py rotate_encryption_key: every stored secret re-encrypted with the first FIELD_ENCRYPTION_KEY.

Rotation: FIELD_ENCRYPTION_KEY=new,old everywhere (web, worker, scheduler), run this command, then
FIELD_ENCRYPTION_KEY=new. It is safe to run again (values already under the new key are skipped) and
while the processes run. It exits non-zero when some value no configured key opens: keep the old keys
until that is resolved.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from whatsapp.key_rotation import rotate_stored_secrets


class Command(BaseCommand):
    help = "Re-encrypt every stored secret (every *_encrypted column, every schema) with the first key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be re-encrypted; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = rotate_stored_secrets(dry_run=options["dry_run"])
        verb = "would re-encrypt" if options["dry_run"] else "re-encrypted"
        self.stdout.write(
            f"{report.schemas} schemas: {verb} {report.rotated} values, {report.current} already "
            f"under the first key, {len(report.unreadable)} unreadable."
        )
        if report.unreadable:
            for where in report.unreadable:
                self.stderr.write(f"unreadable with every configured key: {where}")
            raise CommandError(
                f"{len(report.unreadable)} stored values open with none of the configured keys; "
                "keep the old keys in FIELD_ENCRYPTION_KEY until they are resolved."
            )
