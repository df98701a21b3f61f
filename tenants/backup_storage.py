"""Tenant archives kept in the "backups" storage (settings.STORAGES["backups"]: a local directory under
.data/backups by default, or a bucket), as `<slug>/<slug>-<UTC time>-<reason>.tar.gz`, the newest
BACKUP_KEEP of each tenant's scheduled backups kept. Archives made when a tenant is deleted are kept
apart (reason "deletion") and never pruned by the schedule: they are what a restore after the purge
starts from."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages

from tenants.backup import export_tenant
from tenants.models import Tenant

SCHEDULED = "daily"
DELETION = "deletion"


def backup_storage() -> Storage:
    return storages["backups"]


def backups_of(slug: str, *, reason: str | None = None) -> list[str]:
    """The tenant's archives in the storage, oldest first (names sort by time)."""
    storage = backup_storage()
    try:
        _, files = storage.listdir(f"{slug}/")
    except FileNotFoundError:
        return []
    names = sorted(
        f"{slug}/{name}"
        for name in files
        if name.startswith(f"{slug}-")
        and name.endswith(".tar.gz")
        and (reason is None or f"-{reason}." in name)
    )
    return names


def store_backup(*, tenant: Tenant, reason: str = SCHEDULED) -> str:
    """Export the tenant into the backups storage; returns the stored name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{tenant.slug}/{tenant.slug}-{stamp}-{reason}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="wacrm-backup-") as tmp:
        path = Path(tmp) / "archive.tar.gz"
        export_tenant(tenant=tenant, output=path)
        storage = backup_storage()
        with path.open("rb") as handle:
            return storage.save(name, File(handle, name=name))


def prune_backups(*, slug: str, keep: int | None = None) -> list[str]:
    """Delete all but the newest `keep` scheduled archives of the tenant; returns the deleted names."""
    keep = settings.BACKUP_KEEP if keep is None else keep
    names = backups_of(slug, reason=SCHEDULED)
    doomed = names[: max(0, len(names) - max(keep, 1))]
    storage = backup_storage()
    for name in doomed:
        storage.delete(name)
    return doomed
