"""`make run`'s demo: its number passes the ownership check (against a sandbox of the seed's own, since
the seed runs before the Procfile's sandbox starts), and a second run changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from onboarding.management.commands.seed_demo import SANDBOX_PHONE_NUMBER_ID, SANDBOX_WABA_ID
from tenants.models import NumberRoute, Tenant


def test_the_demo_number_is_connected_through_the_ownership_check(db, settings, tmp_path):
    from conversations.models import Channel
    from whatsapp import crypto

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
        assert crypto.decrypt(Channel.objects.get().access_token_encrypted) == "sandbox-token"


def test_the_demos_media_are_real_files_that_open(db, settings, tmp_path):
    from django.core.files.storage import default_storage

    from conversations.models import MediaFile

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


@pytest.mark.parametrize("environment", ["production", "staging", ""])
def test_the_seed_refuses_to_run_outside_development_and_test_and_creates_nothing(db, settings, environment):
    # CommandError: `manage.py seed_demo` prints the message and exits with status 1.
    from django.contrib.auth import get_user_model

    from onboarding.management.commands.seed_demo import PLATFORM_ADMIN

    settings.DJANGO_ENV = environment
    with pytest.raises(CommandError, match="development or test"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username=PLATFORM_ADMIN).exists()
    assert not Tenant.objects.filter(slug="demo").exists()
