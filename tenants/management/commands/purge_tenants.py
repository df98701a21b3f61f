"""`manage.py purge_tenants`: drop now every tenant whose deletion grace period has passed (what the
scheduler's hourly job does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tenants.lifecycle import purge_due_tenants


class Command(BaseCommand):
    help = "Drop the tenants whose deletion grace period has passed."

    def handle(self, *args: Any, **options: Any) -> None:
        purged = purge_due_tenants()
        self.stdout.write(f"Purged {len(purged)} tenant(s){': ' + ', '.join(purged) if purged else ''}.")
