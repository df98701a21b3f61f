"""A tenant in one archive, and back: `export_tenant` and `import_tenant` (the commands of the same names,
the daily backup job and the deletion service use them).

The archive (tar.gz) holds
- `manifest.json`: format version, app version, the schema's applied migrations, the server's PostgreSQL
  version, the tenant (slug, name, plan, settings) and its number routes, the time, a sha256 per file
  and, per table, its row count and an order-independent hash of its rows;
- `schema.dump`: `pg_dump --format=custom --schema=<schema>` by the pg_dump of the server's major
  version (tenants.pgtools), taken in the same snapshot as the counts and hashes;
- `media/…` and `knowledge/…`: the tenant's files, read through Django's storage API under its
  prefixes (`whatsapp/<schema>/` for messages' media, `knowledge/<schema>/` for the AI agent's
  uploaded sources: `storage_prefixes`), so local disk and S3 work alike.

Import restores the dump under a fresh temporary schema name, checks every table's count (and hash,
when both servers are of one major version) against the manifest, and only then, in one transaction,
renames it to the target schema and writes the Tenant, Domain and NumberRoute rows. pg_restore cannot
rename a schema, and editing the dump's SQL text is fragile, so when the archive's schema name is taken
on this server (an import under a new slug beside the original), the dump goes through a staging
database first: restored there under its own name, renamed with ALTER SCHEMA, dumped again. That needs
a role allowed to create databases (the default `postgres` one is).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import structlog
from django.apps import apps
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection, models, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.models.functions import Concat, Substr
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists
from psycopg import sql

from core import audit
from core.errors import ServiceError
from tenants import pgtools
from tenants.models import Domain, NumberRoute, Tenant, WahaRoute

log = structlog.get_logger("tenants.backup")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "schema.dump"
MEDIA_DIR = "media/"
KNOWLEDGE_DIR = "knowledge/"
SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
SLUG_RE = re.compile(r"^[a-z][a-z0-9]{1,39}$")
CHUNK = 1024 * 1024


def storage_prefixes(schema: str) -> dict[str, str]:
    """Where a tenant's files live in the default storage, by the archive folder that carries them:
    messages' media (whatsapp.services' paths) and knowledge sources (knowledge.services' paths). Every
    file a tenant owns is under one of these, so export, import and purge find them all."""
    return {MEDIA_DIR: f"whatsapp/{schema}/", KNOWLEDGE_DIR: f"knowledge/{schema}/"}


def walk_tenant_files(storage: Storage, schema: str) -> Iterator[tuple[str, str]]:
    """(archive folder, stored name) of every file of the tenant whose schema is `schema`."""
    for folder, prefix in storage_prefixes(schema).items():
        for name in walk_storage(storage, prefix):
            yield folder, name


def media_storage() -> Storage:
    return storages["default"]


# -- reading a schema ----------------------------------------------------------------------------------


def _tables(cursor: Any, schema: str) -> list[str]:
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
    return [row[0] for row in cursor.fetchall()]


def table_digests(cursor: Any, schema: str) -> dict[str, dict[str, Any]]:
    """Per table: its row count and an md5 over its rows' md5s, sorted (so row order does not matter).
    Times are rendered in UTC so the hash does not depend on the session's time zone."""
    cursor.execute("SET TIME ZONE 'UTC'")
    digests: dict[str, dict[str, Any]] = {}
    for table in _tables(cursor, schema):
        cursor.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
                "FROM {}.{} AS t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
        )
        count, digest = cursor.fetchone()
        digests[table] = {"rows": int(count), "md5": digest}
    return digests


def _applied_migrations(cursor: Any, schema: str) -> list[str]:
    cursor.execute(
        sql.SQL("SELECT app, name FROM {}.django_migrations ORDER BY app, name").format(
            sql.Identifier(schema)
        )
    )
    return [f"{app}.{name}" for app, name in cursor.fetchall()]


def _app_version() -> str:
    try:
        return metadata.version("wacrm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def walk_storage(storage: Storage, prefix: str) -> Iterator[str]:
    try:
        dirs, files = storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in sorted(files):
        yield prefix + name
    for name in sorted(dirs):
        yield from walk_storage(storage, f"{prefix}{name}/")


# -- export --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    path: Path
    manifest: dict[str, Any]


def export_tenant(*, tenant: Tenant, output: Path) -> Export:
    """Write the tenant's archive to `output` (a local path). Rows, counts and hashes come from one
    snapshot: pg_dump runs with the snapshot of the transaction that counted them."""
    schema = tenant.schema_name
    if not schema_exists(schema):
        raise ServiceError("schema_missing", f"The tenant {tenant.slug} has no schema to export.", status=409)
    major = pgtools.server_major()
    pg_dump = pgtools.pg_program("pg_dump", major=major)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wacrm-export-") as tmp:
        work = Path(tmp)
        dump = work / DUMP
        with pgtools.connect() as conn:
            # Set before the first statement: psycopg opens the transaction with them.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
                snapshot, server_version = cursor.fetchone()  # type: ignore[misc]
                digests = table_digests(cursor, schema)
                migrations = _applied_migrations(cursor, schema)
            pgtools.run(
                [
                    pg_dump,
                    "--format=custom",
                    f"--schema={schema}",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                ],
                what="pg_dump",
            )
            conn.rollback()
        files = {DUMP: _sha256_file(dump)}
        storage = media_storage()
        prefixes = storage_prefixes(schema)
        for folder, name in walk_tenant_files(storage, schema):
            relative = folder + name[len(prefixes[folder]) :]
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with storage.open(name, "rb") as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
            files[relative] = _sha256_file(target)
        manifest = {
            "format": FORMAT_VERSION,
            "app_version": _app_version(),
            "created_at": datetime.now(UTC).isoformat(),
            "postgresql": {"version": server_version, "major": major},
            "tenant": {
                "slug": tenant.slug,
                "schema": schema,
                "name": tenant.name,
                "plan": tenant.plan,
                "settings": tenant.settings,
            },
            "number_routes": [
                {
                    "phone_number_id": route.phone_number_id,
                    "waba_id": route.waba_id,
                    "verified_at": route.verified_at.isoformat() if route.verified_at else None,
                    "app_secret_encrypted": route.app_secret_encrypted,
                }
                for route in NumberRoute.objects.filter(tenant=tenant).order_by("phone_number_id")
            ],
            # WAHA numbers' webhook routes, with their HMAC keys as stored (encrypted).
            "waha_routes": [
                {"webhook_id": route.webhook_id, "hmac_key_encrypted": route.hmac_key_encrypted}
                for route in WahaRoute.objects.filter(tenant=tenant).order_by("webhook_id")
            ],
            "migrations": migrations,
            "tables": digests,
            "media_prefix": prefixes[MEDIA_DIR],
            "storage_prefixes": prefixes,
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        partial = output.with_name(output.name + ".part")
        try:
            with tarfile.open(partial, "w:gz") as archive:
                archive.add(work / MANIFEST, arcname=MANIFEST)
                archive.add(dump, arcname=DUMP)
                for folder in prefixes:
                    if (work / folder).exists():
                        archive.add(work / folder, arcname=folder.rstrip("/"))
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
    log.info(
        "tenant_exported", tenant=tenant.slug, path=str(output), tables=len(digests), media=len(files) - 1
    )
    audit.record("export.created", target=tenant, details={"kind": "tenant_archive"}, platform=True)
    return Export(path=output, manifest=manifest)


# -- import --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    tenant: Tenant
    manifest: dict[str, Any]
    replaced: bool


def _bad_archive(message: str) -> ServiceError:
    return ServiceError("invalid_archive", message)


def read_archive(archive: Path, into: Path) -> dict[str, Any]:
    """Unpack `archive` into `into` and check it: a manifest of a known format, and every file it lists
    present with its checksum (and nothing else). Unpacking refuses links, devices and paths outside
    `into` (tarfile's "data" filter)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise _bad_archive(f"The archive cannot be read: {exc}") from exc
    try:
        manifest = json.loads((into / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise _bad_archive("The archive has no readable manifest.json.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise _bad_archive(f"Unknown archive format {manifest.get('format')!r} (expected {FORMAT_VERSION}).")
    files = manifest.get("files")
    if not isinstance(files, dict) or DUMP not in files:
        raise _bad_archive("The manifest lists no schema dump.")
    present = {path.relative_to(into).as_posix() for path in into.rglob("*") if path.is_file()} - {MANIFEST}
    if present != set(files):
        extra, missing = sorted(present - set(files)), sorted(set(files) - present)
        raise _bad_archive(
            f"The archive's files do not match its manifest (extra {extra}, missing {missing})."
        )
    for name, expected in files.items():
        if _sha256_file(into / name) != expected:
            raise _bad_archive(f"Checksum mismatch for {name}: the archive is damaged.")
    source = manifest.get("tenant", {}).get("schema", "")
    if not isinstance(source, str) or not SCHEMA_RE.match(source):
        raise _bad_archive("The manifest names no valid schema.")
    return manifest


def _known_migrations() -> set[str]:
    """The migrations a tenant schema of this installation has: those of the migrated template schema
    new tenants are cloned from (the migration files on disk if there is none)."""
    template = settings.TENANT_BASE_SCHEMA
    if schema_exists(template):
        with pgtools.connect() as conn, conn.cursor() as cursor:
            return set(_applied_migrations(cursor, template))
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {f"{app}.{name}" for app, name in loader.disk_migrations}


def _check_slug(slug: str) -> None:
    if not SLUG_RE.match(slug) or slug == get_public_schema_name() or slug.startswith("pg"):
        raise ServiceError(
            "invalid_slug", "The slug must be 2 to 40 lowercase letters or digits.", field="slug"
        )
    if slug == settings.TENANT_BASE_SCHEMA:
        raise ServiceError("invalid_slug", "That slug is reserved.", field="slug")


def _check_target(slug: str, replace: bool) -> Tenant | None:
    _check_slug(slug)
    existing = Tenant.objects.filter(slug=slug).first()
    if (existing is not None or schema_exists(slug)) and not replace:
        state = "an active" if existing is not None and existing.is_active else "an existing"
        raise ServiceError(
            "tenant_exists",
            f"{state.capitalize()} tenant or schema named {slug!r} exists: import under another slug, "
            "or pass --replace to overwrite it.",
            status=409,
            field="slug",
        )
    if existing is None and schema_exists(slug):
        raise ServiceError(
            "schema_exists", f"A schema named {slug!r} exists without a tenant; drop it first.", status=409
        )
    return existing


def _check_routes(manifest: dict[str, Any], existing: Tenant | None) -> None:
    numbers = [route["phone_number_id"] for route in manifest.get("number_routes", [])]
    taken = NumberRoute.objects.filter(phone_number_id__in=numbers).select_related("tenant")
    if existing is not None:
        taken = taken.exclude(tenant=existing)
    clashes = sorted(f"{route.phone_number_id} ({route.tenant.slug})" for route in taken)
    hooks = [route["webhook_id"] for route in manifest.get("waha_routes", [])]
    taken_hooks = WahaRoute.objects.filter(webhook_id__in=hooks).select_related("tenant")
    if existing is not None:
        taken_hooks = taken_hooks.exclude(tenant=existing)
    clashes += sorted(f"WAHA webhook {route.webhook_id} ({route.tenant.slug})" for route in taken_hooks)
    if clashes:
        raise ServiceError(
            "number_taken",
            "These numbers are routed to another tenant: "
            + ", ".join(clashes)
            + ". Disconnect them there (or purge that tenant) first.",
            status=409,
            details={"numbers": clashes},
        )


def _restore_options() -> list[str]:
    return ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]


def _restore_renamed(dump: Path, source: str, temp: str, major: int) -> None:
    """Restore `dump` (schema `source`) into this database as schema `temp`."""
    pg_restore = pgtools.pg_program("pg_restore", major=major)
    if not schema_exists(source):
        pgtools.run(
            [pg_restore, *_restore_options(), f"--dbname={pgtools.conninfo()['dbname']}", str(dump)],
            what="pg_restore",
        )
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SCHEMA {_qn(source)} RENAME TO {_qn(temp)}")
        return
    # The name is taken here: rename it in a staging database, then bring it over under the new name.
    pg_dump = pgtools.pg_program("pg_dump", major=major)
    staging = f"wacrm_restore_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")
        extensions = [row[0] for row in cursor.fetchall()]
        # Functions in public that a tenant's objects may use (the audit log's append-only trigger):
        # the staging database needs them for the dump's triggers to restore. Extensions' own excluded.
        cursor.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.prokind = 'f' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
            "WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
        )
        functions = [row[0] for row in cursor.fetchall()]
    with pgtools.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(staging)))
    try:
        with pgtools.connect(staging, autocommit=True) as conn:
            for extension in extensions:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA public").format(
                        sql.Identifier(extension)
                    )
                )
            for definition in functions:
                conn.execute(definition.encode())
        pgtools.run(
            [pg_restore, *_restore_options(), f"--dbname={staging}", str(dump)],
            database=staging,
            what="pg_restore (staging)",
        )
        with pgtools.connect(staging, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(source), sql.Identifier(temp))
            )
        renamed = dump.with_name("renamed.dump")
        pgtools.run(
            [
                pg_dump,
                "--format=custom",
                f"--schema={temp}",
                "--no-owner",
                "--no-privileges",
                f"--file={renamed}",
            ],
            database=staging,
            what="pg_dump (staging)",
        )
        pgtools.run(
            [pg_restore, *_restore_options(), f"--dbname={pgtools.conninfo()['dbname']}", str(renamed)],
            what="pg_restore",
        )
    finally:
        with pgtools.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))


def _qn(schema: str) -> str:
    """A schema name for Django's cursor; every name here passed SCHEMA_RE (or is generated)."""
    if not SCHEMA_RE.match(schema):
        raise ServiceError("invalid_schema", f"Refusing the schema name {schema!r}.", status=500)
    return connection.ops.quote_name(schema)


def _drop_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {_qn(schema)} CASCADE")


def _verify_tables(manifest: dict[str, Any], schema: str, same_major: bool) -> None:
    with pgtools.connect() as conn, conn.cursor() as cursor:
        found = table_digests(cursor, schema)
    expected = manifest.get("tables", {})
    if set(found) != set(expected):
        raise _bad_archive(
            f"The restored tables differ from the manifest's: {sorted(set(found) ^ set(expected))}."
        )
    for table, digest in expected.items():
        if found[table]["rows"] != digest["rows"] or (same_major and found[table]["md5"] != digest["md5"]):
            raise _bad_archive(f"The restored table {table} does not match the manifest.")


def _file_fields() -> list[tuple[type[models.Model], str]]:
    tenant_apps = set(settings.TENANT_APPS) - set(settings.SHARED_APPS)
    found = []
    for model in apps.get_models():
        if model._meta.app_config.name not in tenant_apps:  # type: ignore[union-attr]
            continue
        for field in model._meta.get_fields():
            if isinstance(field, models.FileField):
                found.append((model, field.name))
    return found


def _archive_prefixes(manifest: dict[str, Any]) -> dict[str, str]:
    """The storage prefixes the archive's files came from (archives made before knowledge files were
    exported name the media prefix alone)."""
    prefixes = manifest.get("storage_prefixes")
    if isinstance(prefixes, dict):
        return {str(k): str(v) for k, v in prefixes.items()}
    return {MEDIA_DIR: manifest.get("media_prefix") or f"whatsapp/{manifest['tenant']['schema']}/"}


def _rewrite_media_paths(old_prefixes: dict[str, str], new_prefixes: dict[str, str]) -> None:
    """File fields naming the archive's prefixes now name the target's (only when the schema changed)."""
    for folder, old_prefix in old_prefixes.items():
        new_prefix = new_prefixes.get(folder)
        if new_prefix is None or old_prefix == new_prefix:
            continue
        for model, name in _file_fields():
            model._default_manager.filter(**{f"{name}__startswith": old_prefix}).update(
                **{name: Concat(models.Value(new_prefix), Substr(name, len(old_prefix) + 1))}
            )


def _copy_media(root: Path, manifest: dict[str, Any], prefixes: dict[str, str]) -> list[str]:
    storage = media_storage()
    written = []
    for name, expected in sorted(manifest["files"].items()):
        folder = next((f for f in prefixes if name.startswith(f)), None)
        if folder is None:
            continue
        target = prefixes[folder] + name[len(folder) :]
        if storage.exists(target):
            storage.delete(target)
        with (root / name).open("rb") as handle:
            saved = storage.save(target, File(handle, name=target))
        written.append(saved)
        if saved != target:
            raise ServiceError("media_copy_failed", f"The storage saved {target} as {saved}.", status=500)
        digest = hashlib.sha256()
        with storage.open(saved, "rb") as check:
            for chunk in iter(lambda: check.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise ServiceError("media_copy_failed", f"{target} did not read back as written.", status=500)
    return written


def import_tenant(*, archive: Path, slug: str | None = None, replace: bool = False) -> Imported:
    """Restore an archive as tenant `slug` (default: the archive's). Nothing is half-done: a failure
    before the final transaction drops the temporary schema and the media copied so far."""
    slug = (slug or "").strip().lower()
    if slug:
        _check_slug(slug)
    with tempfile.TemporaryDirectory(prefix="wacrm-import-") as tmp:
        root = Path(tmp)
        manifest = read_archive(Path(archive), root)
        source = manifest["tenant"]["schema"]
        slug = slug or str(manifest["tenant"].get("slug") or "").strip().lower()
        existing = _check_target(slug, replace)
        unknown = sorted(set(manifest.get("migrations", [])) - _known_migrations())
        if unknown:
            raise ServiceError(
                "archive_newer",
                "The archive comes from a newer version of the application (unknown migrations: "
                + ", ".join(unknown[:10])
                + "). Upgrade this installation first.",
                status=409,
            )
        _check_routes(manifest, existing)
        major = pgtools.server_major()
        temp = f"imp_{uuid.uuid4().hex[:16]}"
        prefixes = storage_prefixes(slug)
        written: list[str] = []
        try:
            _restore_renamed(root / DUMP, source, temp, major)
            _verify_tables(manifest, temp, same_major=manifest["postgresql"]["major"] == major)
            written = _copy_media(root, manifest, prefixes)
            tenant = _install(manifest, temp=temp, slug=slug, existing=existing)
        except BaseException:
            _drop_schema(temp)
            storage = media_storage()
            for name in written if existing is None else []:
                storage.delete(name)
            raise
    if existing is not None:
        keep = set(written)
        storage = media_storage()
        for _folder, name in list(walk_tenant_files(storage, slug)):
            if name not in keep:
                storage.delete(name)
    if _known_migrations() - set(manifest.get("migrations", [])):  # an older archive: bring it up to date
        from django.core.management import call_command

        call_command("migrate_schemas", schema_name=slug, interactive=False, verbosity=0)
    log.info("tenant_imported", tenant=slug, source=manifest["tenant"]["slug"], replaced=existing is not None)
    return Imported(tenant=tenant, manifest=manifest, replaced=existing is not None)


@transaction.atomic
def _install(manifest: dict[str, Any], *, temp: str, slug: str, existing: Tenant | None) -> Tenant:
    meta = manifest["tenant"]
    with schema_context(get_public_schema_name()):
        if existing is not None:
            _drop_schema(existing.schema_name)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SCHEMA {_qn(temp)} RENAME TO {_qn(slug)}")
        tenant = existing or Tenant(schema_name=slug, slug=slug)
        tenant.name = meta.get("name") or slug
        tenant.plan = meta.get("plan") or Tenant.Plan.FREE
        tenant.settings = meta.get("settings") or {}
        tenant.is_active = True
        tenant.deletion_requested_at = None
        tenant.purge_after = None
        tenant.save(verbosity=0)
        if not Domain.objects.filter(tenant=tenant).exists():
            Domain.objects.create(tenant=tenant, domain=f"{slug}.{settings.BASE_DOMAIN}", is_primary=True)
        numbers = [route["phone_number_id"] for route in manifest.get("number_routes", [])]
        NumberRoute.objects.filter(tenant=tenant).exclude(phone_number_id__in=numbers).delete()
        for route in manifest.get("number_routes", []):
            NumberRoute.objects.update_or_create(
                phone_number_id=route["phone_number_id"],
                defaults={
                    "tenant": tenant,
                    "waba_id": route.get("waba_id") or "",
                    "verified_at": route.get("verified_at"),
                    "app_secret_encrypted": route.get("app_secret_encrypted") or "",
                },
            )
        hooks = [route["webhook_id"] for route in manifest.get("waha_routes", [])]
        WahaRoute.objects.filter(tenant=tenant).exclude(webhook_id__in=hooks).delete()
        for route in manifest.get("waha_routes", []):
            WahaRoute.objects.update_or_create(
                webhook_id=route["webhook_id"],
                defaults={"tenant": tenant, "hmac_key_encrypted": route["hmac_key_encrypted"]},
            )
    with schema_context(slug):
        _rewrite_media_paths(_archive_prefixes(manifest), storage_prefixes(slug))
    return tenant


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest alone (for listing backups), without unpacking the media."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise _bad_archive("The archive has no manifest.json.")
            return json.loads(io.TextIOWrapper(member, encoding="utf-8").read())  # type: ignore[no-any-return]
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise _bad_archive(f"The archive cannot be read: {exc}") from exc
