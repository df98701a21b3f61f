"""`make run`'s demo: its number passes the ownership check (against a sandbox of the seed's own, since
the seed runs before the Procfile's sandbox starts), and a second run changes nothing."""

from __future__ import annotations

import io

from django.core.management import call_command
from django_tenants.utils import schema_context

from tenants.management.commands.seed_demo import SANDBOX_PHONE_NUMBER_ID, SANDBOX_WABA_ID
from tenants.models import NumberRoute


def test_the_demo_number_is_connected_through_the_ownership_check(db, settings, tmp_path):
    from whatsapp.models import WhatsAppChannel

    settings.MEDIA_ROOT = tmp_path
    settings.WHATSAPP_GRAPH_URL = "http://127.0.0.1:9/v21.0"  # no sandbox running: the seed brings its own
    call_command("seed_demo", stdout=io.StringIO())

    route = NumberRoute.objects.get(phone_number_id=SANDBOX_PHONE_NUMBER_ID)
    assert (route.tenant.slug, route.waba_id) == ("demo", SANDBOX_WABA_ID)
    assert route.verified_at is not None
    verified_at = route.verified_at

    call_command("seed_demo", stdout=io.StringIO())
    assert NumberRoute.objects.get(phone_number_id=SANDBOX_PHONE_NUMBER_ID).verified_at == verified_at
    with schema_context("demo"):
        assert WhatsAppChannel.objects.get().access_token == "sandbox-token"


def test_the_demos_media_are_real_files_that_open(db, settings, tmp_path):
    from django.core.files.storage import default_storage

    from whatsapp.models import MediaFile

    settings.MEDIA_ROOT = tmp_path
    settings.WHATSAPP_GRAPH_URL = "http://127.0.0.1:9/v21.0"
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # a second run adds no second copy
    with schema_context("demo"):
        files = {m.kind + ":" + m.direction: m for m in MediaFile.objects.filter(status="ready")}
        assert set(files) == {
            "image:in",
            "document:in",
            "document:out",
            "audio:in",
            "sticker:in",
            "video:in",
        }
        magic = {
            "image:in": b"\x89PNG",
            "document:in": b"%PDF-",
            "document:out": b"%PDF-",
            "audio:in": b"RIFF",
            "sticker:in": b"RIFF",
            "video:in": b"\x00\x00\x00",  # an MP4's first box size; "ftyp" follows
        }
        for key, media in files.items():
            assert media.file.name.startswith("whatsapp/demo/")
            with default_storage.open(media.file.name) as handle:
                content = handle.read()
            assert content.startswith(magic[key]) and len(content) == media.size
