"""export_tenant / import_tenant: the archive, a full round trip, and every way an import is refused."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context, schema_exists

from core.errors import ServiceError
from tenants import pgtools
from tenants.backup import _known_migrations, export_tenant, import_tenant, read_archive, table_digests
from tenants.db import connection
from tenants.models import Domain, NumberRoute, Tenant
from tenants.tests.backup_fixtures import model, seed, storages_at, tenants_made

# Tables whose rows name the tenant's media prefix: compared with the prefix mapped to the new one.
MEDIA_TABLES = {"whatsapp_mediafile", "conversations_mediafile"}


def digests(schema: str, *, media_from: str = "", media_to: str = "") -> dict[str, dict[str, Any]]:
    with pgtools.connect() as conn, conn.cursor() as cursor:
        found = table_digests(cursor, schema)
        for table in MEDIA_TABLES & set(found):
            if not media_from:
                continue
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position",
                [schema, table],
            )
            columns = [
                f"replace(m.{name}, %(old)s, %(new)s) AS {name}" if name == "file" else f"m.{name}"
                for (name,) in cursor.fetchall()
            ]
            cursor.execute(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
                f'FROM (SELECT {", ".join(columns)} FROM "{schema}"."{table}" m) t',
                {"old": media_from, "new": media_to},
            )
            count, digest = cursor.fetchone()  # type: ignore[misc]
            found[table] = {"rows": count, "md5": digest}
    return found


def test_the_archive_holds_a_manifest_a_dump_and_the_media(make_tenant: Any, tmp_path: Path) -> None:
    tenant = make_tenant()
    made = seed(tenant)
    out = tmp_path / "out" / "alpha.tar.gz"
    call_command("export_tenant", "--tenant", tenant.slug, "--output", str(out), stdout=io.StringIO())
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    relative = made["media_path"][len(f"whatsapp/{tenant.schema_name}/") :]
    assert {"manifest.json", "schema.dump", f"media/{relative}"} <= set(names)
    assert manifest["format"] == 1
    assert manifest["tenant"]["slug"] == tenant.slug
    assert manifest["postgresql"]["major"] == pgtools.server_major()
    assert set(manifest["files"]) == {"schema.dump", f"media/{relative}"}
    assert manifest["tables"]["crm_contact"]["rows"] == 2
    assert manifest["tables"]["conversations_message"]["rows"] == 3
    assert any(m.startswith("crm.0001") for m in manifest["migrations"])
    assert [r["phone_number_id"] for r in manifest["number_routes"]] == [made["phone_number_id"]]
    assert manifest["app_version"]
    # An archive of this version needs no migration when imported here.
    assert _known_migrations() <= set(manifest["migrations"])
    # The platform's audit log says who exported which tenant.
    from core.models import AuditEvent

    assert AuditEvent.objects.filter(action="export.created", target_id=str(tenant.pk)).exists()


@pytest.fixture(scope="module")
def exported(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Any:
    """One seeded tenant's archive, shared by the tests that only try to import it."""
    root = tmp_path_factory.mktemp("exported")
    with override_settings(STORAGES=storages_at(root)), django_db_blocker.unblock(), tenants_made() as make:
        tenant = make()
        made = seed(tenant)
        archive = export_tenant(tenant=tenant, output=root / "a.tar.gz").path
        yield SimpleNamespace(tenant=tenant, made=made, archive=archive, make=make)


def test_a_round_trip_under_a_new_slug_keeps_every_table(make_tenant: Any, tmp_path: Path) -> None:
    tenant = make_tenant()
    made = seed(tenant)
    before = digests(tenant.schema_name)
    archive = export_tenant(tenant=tenant, output=tmp_path / "a.tar.gz").path
    # The numbers are the original's while it lives: the copy may take them only once they are free.
    NumberRoute.objects.filter(tenant=tenant).delete()
    new_slug = tenant.slug + "x"
    make_tenant.made.append(new_slug)
    out = io.StringIO()
    call_command("import_tenant", "--archive", str(archive), "--slug", new_slug, stdout=out)
    assert f"Imported {new_slug}" in out.getvalue()

    after = digests(new_slug, media_from=f"whatsapp/{new_slug}/", media_to=f"whatsapp/{tenant.slug}/")
    assert set(after) == set(before)
    assert after == before
    non_empty = {table for table, d in before.items() if d["rows"]}
    assert {"crm_contact", "conversations_conversation", "conversations_message", "crm_deal"} <= non_empty

    copy = Tenant.objects.get(slug=new_slug)
    assert copy.is_active and copy.schema_name == new_slug and copy.name == tenant.name
    assert Domain.objects.filter(tenant=copy, is_primary=True).exists()
    assert NumberRoute.objects.get(phone_number_id=made["phone_number_id"]).tenant == copy
    with schema_context(new_slug):
        media = model("MediaFile").objects.get()
        assert media.file.name.startswith(f"whatsapp/{new_slug}/")
        with default_storage.open(media.file.name) as handle:
            assert handle.read() == made["media"]
    # The original is untouched.
    assert digests(tenant.schema_name) == before
    with default_storage.open(made["media_path"]) as handle:
        assert handle.read() == made["media"]


def test_an_import_over_the_same_slug_needs_replace_and_then_restores_it(
    make_tenant: Any, tmp_path: Path
) -> None:
    tenant = make_tenant()
    seed(tenant)
    before = digests(tenant.schema_name)
    archive = export_tenant(tenant=tenant, output=tmp_path / "a.tar.gz").path
    with schema_context(tenant.schema_name):
        model("Contact").objects.create(name="Added later", phone="+15559990000")

    with pytest.raises(CommandError, match="tenant_exists"):
        call_command("import_tenant", "--archive", str(archive), stdout=io.StringIO())
    assert digests(tenant.schema_name) != before  # refused: nothing changed

    call_command("import_tenant", "--archive", str(archive), "--replace", stdout=io.StringIO())
    assert digests(tenant.schema_name) == before
    assert Tenant.objects.filter(slug=tenant.slug).count() == 1


def test_an_import_after_the_tenant_was_dropped_brings_it_back(make_tenant: Any, tmp_path: Path) -> None:
    tenant = make_tenant()
    made = seed(tenant)
    before = digests(tenant.schema_name)
    archive = export_tenant(tenant=tenant, output=tmp_path / "a.tar.gz").path
    Tenant.objects.filter(pk=tenant.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')
    default_storage.delete(made["media_path"])

    imported = import_tenant(archive=archive)
    assert imported.tenant.slug == tenant.slug
    assert digests(tenant.slug) == before
    assert default_storage.exists(made["media_path"])
    assert NumberRoute.objects.get(phone_number_id=made["phone_number_id"]).tenant == imported.tenant


def test_an_import_is_refused_when_its_numbers_are_routed_to_another_tenant(
    exported: Any, storages_in: Path, django_db_blocker: Any
) -> None:
    new_slug = exported.tenant.slug + "y"
    exported.make.made.append(new_slug)
    with django_db_blocker.unblock():
        with pytest.raises(ServiceError) as caught:
            import_tenant(archive=exported.archive, slug=new_slug)
        assert caught.value.code == "number_taken"
        assert exported.made["phone_number_id"] in caught.value.message
        assert not Tenant.objects.filter(slug=new_slug).exists()
        assert not schema_exists(new_slug)


def _rewrite(archive: Path, target: Path, change: Any) -> Path:
    """A copy of `archive` with `change(name, bytes) -> bytes | None` applied to each member."""
    with tarfile.open(archive) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            if not member.isfile():
                continue
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            data = change(member.name, data)
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return target


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda name, data: data + b"x" if name == "schema.dump" else data, "Checksum mismatch"),
        (lambda name, data: None if name.startswith("media/") else data, "do not match its manifest"),
        (
            lambda name, data: (
                json.dumps({**json.loads(data), "format": 99}).encode() if name == "manifest.json" else data
            ),
            "Unknown archive format",
        ),
        (
            lambda name, data: (
                json.dumps({**json.loads(data), "migrations": ["crm.9999_future"]}).encode()
                if name == "manifest.json"
                else data
            ),
            "newer version",
        ),
    ],
    ids=["damaged-dump", "missing-media", "unknown-format", "newer-app"],
)
def test_a_damaged_or_foreign_archive_is_refused_and_nothing_is_stored(
    exported: Any, storages_in: Path, django_db_blocker: Any, damage: Any, message: str
) -> None:
    bad = _rewrite(exported.archive, storages_in / "bad.tar.gz", damage)
    new_slug = exported.tenant.slug + "z"
    exported.make.made.append(new_slug)
    with django_db_blocker.unblock():
        with pytest.raises(ServiceError, match=message):
            import_tenant(archive=bad, slug=new_slug)
        assert not Tenant.objects.filter(slug=new_slug).exists()
        assert not schema_exists(new_slug)
    assert not default_storage.exists(f"whatsapp/{new_slug}/")


def test_an_archive_with_a_path_outside_its_folder_is_refused(tmp_path: Path, db: None) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ServiceError) as caught:
        read_archive(evil, tmp_path / "unpacked")
    assert caught.value.code == "invalid_archive"
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("slug", ["public", "Bad-Slug", "x", "pg_catalog", "tenant_template", "a;drop"])
def test_an_import_under_an_unusable_slug_is_refused_before_anything_is_read(
    db: None, tmp_path: Path, slug: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        import_tenant(archive=tmp_path / "never-read.tar.gz", slug=slug)
    assert caught.value.code == "invalid_slug"


def test_export_of_an_unknown_tenant_is_a_clear_command_error(db: None) -> None:
    with pytest.raises(CommandError, match="No tenant"):
        call_command("export_tenant", "--tenant", "nosuchtenant", stdout=io.StringIO())


def test_the_pg_dump_used_is_the_servers_major_version(db: None) -> None:
    program = pgtools.pg_program("pg_dump")
    assert pgtools._major_of(program) == pgtools.server_major()


def test_a_missing_pg_dump_is_a_clear_error(db: None, settings: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(pgtools, "_candidates", lambda name, major: [Path("/nonexistent") / name])
    with pytest.raises(ServiceError) as caught:
        pgtools.pg_program("pg_dump")
    assert caught.value.code == "pg_tools_missing"


def _knowledge_file(tenant: Any, content: bytes) -> str:
    """An uploaded knowledge source of the tenant, stored where knowledge.services stores it."""
    from knowledge import services as knowledge_services

    with schema_context(tenant.schema_name):
        source = knowledge_services.create_file_source(
            name="prices.txt", data=content, content_type="text/plain", title="Prices"
        )
        return str(source.file.name)


def test_knowledge_files_travel_with_the_tenant(make_tenant: Any, tmp_path: Path) -> None:
    tenant = make_tenant()
    seed(tenant)
    stored = _knowledge_file(tenant, b"Delivery costs 4 EUR.")
    assert stored.startswith(f"knowledge/{tenant.schema_name}/")
    archive = export_tenant(tenant=tenant, output=tmp_path / "k.tar.gz").path
    with tarfile.open(archive) as tar:
        assert f"knowledge/{stored.rsplit('/', 1)[-1]}" in tar.getnames()
    NumberRoute.objects.filter(tenant=tenant).delete()
    new_slug = tenant.slug + "k"
    make_tenant.made.append(new_slug)
    import_tenant(archive=archive, slug=new_slug)
    with schema_context(new_slug):
        source = model("Source").objects.get()
        assert source.file.name == f"knowledge/{new_slug}/{stored.rsplit('/', 1)[-1]}"
        with default_storage.open(source.file.name) as handle:
            assert handle.read() == b"Delivery costs 4 EUR."
    assert default_storage.exists(stored)  # the original keeps its own


def test_waha_routes_travel_with_the_tenant_and_are_never_taken_from_another(
    make_tenant: Any, tmp_path: Path
) -> None:
    from core import crypto
    from tenants.models import WahaRoute
    from waha.testing import make_waha_number

    tenant = make_tenant()
    seed(tenant)
    number = make_waha_number(tenant)
    archive = export_tenant(tenant=tenant, output=tmp_path / "w.tar.gz").path
    NumberRoute.objects.filter(tenant=tenant).delete()
    new_slug = tenant.slug + "w"
    with pytest.raises(ServiceError) as refused:
        import_tenant(archive=archive, slug=new_slug)
    assert refused.value.code == "number_taken"
    assert not schema_exists(new_slug)

    WahaRoute.objects.filter(tenant=tenant).delete()
    make_tenant.made.append(new_slug)
    import_tenant(archive=archive, slug=new_slug)
    route = WahaRoute.objects.get(webhook_id=number.webhook_id)
    assert route.tenant.slug == new_slug
    assert crypto.decrypt(route.hmac_key_encrypted) == number.webhook_key
