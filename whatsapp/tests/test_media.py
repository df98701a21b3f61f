from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import default_storage
from django.test import TestCase
from django_tenants.utils import schema_context

from conversations.models import MediaFile
from conversations.services import send_media_message
from whatsapp.services import MediaRejected, upload_media
from whatsapp.testing import deliver, fixture, post_webhook, run_jobs

JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg body" * 100


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _image_event(sha: str):
    body = fixture("image")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["sha256"] = sha
    return body


def test_inbound_media_is_downloaded_into_tenant_scoped_storage_with_its_sha256_checked(
    public_client, channel_a, tenant_a, sandbox, media_root
):
    sandbox.add_media(JPEG, "image/jpeg", media_id="1003383421387256")
    deliver(public_client, _image_event(hashlib.sha256(JPEG).hexdigest()))
    with schema_context(tenant_a.schema_name):
        media = MediaFile.objects.get()
        assert media.status == "ready"
        assert media.file.name.startswith("whatsapp/alpha/image/")
        assert media.size == len(JPEG)
        with default_storage.open(media.file.name) as handle:
            assert handle.read() == JPEG


def test_a_corrupt_download_is_retried_and_a_redelivery_never_blocks_it(
    public_client, channel_a, tenant_a, sandbox, media_root
):
    from whatsapp.client import GraphError

    sandbox.add_media(b"something else", "image/jpeg", media_id="1003383421387256")
    post_webhook(public_client, _image_event(hashlib.sha256(JPEG).hexdigest()))
    with pytest.raises(GraphError):
        run_jobs()  # the sha256 does not match: the download job raises so Dramatiq retries it
    with schema_context(tenant_a.schema_name):
        assert MediaFile.objects.get().status == "pending"
        MediaFile.objects.update(status="failed")
    sandbox.add_media(JPEG, "image/jpeg", media_id="1003383421387256")
    deliver(public_client, _image_event(hashlib.sha256(JPEG).hexdigest()))  # Meta redelivers the message
    with schema_context(tenant_a.schema_name):
        assert MediaFile.objects.get().status == "ready"


def test_media_over_the_cloud_api_limit_is_refused(public_client, channel_a, tenant_a, sandbox, media_root):
    sticker = fixture("sticker")
    sandbox.add_media(b"x" * (600 * 1024), "image/webp", media_id="1003383421387260")
    deliver(public_client, sticker)
    with schema_context(tenant_a.schema_name):
        media = MediaFile.objects.get()
        assert media.status == "failed"
        assert "at most 500 KB" in media.error


def test_outbound_media_is_uploaded_and_sent_by_media_id(
    conversation_a, channel_a, tenant_a, sandbox, media_root
):
    with schema_context(tenant_a.schema_name):
        media = upload_media(channel=channel_a, content=JPEG, filename="shop.jpg", mime_type="image/jpeg")
        assert media.kind == "image" and media.media_id
        with TestCase.captureOnCommitCallbacks(execute=True):
            send_media_message(conversation=conversation_a, media=media, caption="Our shop")
        run_jobs()
    body = sandbox.sent()[0]["body"]
    assert body["type"] == "image"
    assert body["image"] == {"id": media.media_id, "caption": "Our shop"}
    assert sandbox.state.media[media.media_id][0] == JPEG


@pytest.mark.parametrize(
    ("mime", "size", "code"),
    [("image/gif", 10, "unsupported_media_type"), ("image/jpeg", 6 * 1024 * 1024, "media_too_large")],
)
def test_outbound_media_respects_type_and_size_limits(mime, size, code, channel_a, tenant_a, media_root):
    with schema_context(tenant_a.schema_name), pytest.raises(MediaRejected) as rejected:
        upload_media(channel=channel_a, content=b"x" * size, filename="f", mime_type=mime, kind="image")
    assert rejected.value.code == code
