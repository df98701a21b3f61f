"""Media opens only through the inbox's authenticated view, safely; the retry of a failed download; and
read receipts and typing indicators only from what a person does, never from a GET of a thread."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, MediaFile, Message
from conversations.tests.conftest import add_message, make_conversation
from whatsapp.testing import queued_jobs, run_jobs

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
    b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n%test document\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def stored_media(
    tenant: Any,
    conversation: Conversation,
    channel: Any,
    *,
    kind: str = "image",
    mime: str = "image/png",
    content: bytes = PNG,
    filename: str = "",
    direction: str = "in",
    status: str = "ready",
    error: str = "",
    media_id: str = "",
) -> MediaFile:
    message = add_message(tenant, conversation, direction=direction, type=kind, text=filename or kind)
    with schema_context(tenant.schema_name):
        path = ""
        if status == "ready":
            path = default_storage.save(
                f"whatsapp/{tenant.schema_name}/{kind}/test/{uuid.uuid4().hex}", ContentFile(content)
            )
        return MediaFile.objects.create(
            channel=channel,
            message=message,
            direction=direction,
            kind=kind,
            media_id=media_id,
            file=path,
            filename=filename,
            mime_type=mime,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            status=status,
            error=error,
        )


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# -- who may open a file -----------------------------------------------------------------------------


def test_the_owner_opens_an_inbound_image_inline_with_its_stored_type(client_a, tenant_a, owner_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_a, tenant_a, owner_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 200
    assert body_of(response) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert not response.get("Content-Disposition", "").startswith("attachment")
    assert "private" in response["Cache-Control"]


def test_an_agent_who_cannot_see_the_conversation_gets_404_for_its_media(
    client_a, tenant_a, agent_a, other_agent_a, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a, assignee=other_agent_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_a, tenant_a, agent_a)
    assert client_a.get(f"/inbox/media/{media.pk}/").status_code == 404
    assert client_a.post(f"/inbox/media/{media.pk}/retry/").status_code == 404


def test_another_tenants_user_on_their_own_host_gets_404_for_the_same_id(
    client_b, tenant_a, tenant_b, owner_b, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_b, tenant_b, owner_b)
    response = client_b.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 404
    assert PNG not in response.content


def test_a_signed_out_visitor_is_sent_to_sign_in_and_gets_no_bytes(client_a, tenant_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert PNG not in response.content


def test_a_user_of_another_tenant_with_a_session_there_cannot_use_it_here(
    client_a, tenant_a, tenant_b, owner_b, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_a, tenant_b, owner_b)  # B's session cookie, sent to A's host
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code in (302, 404)
    assert PNG not in body_of(response)


def test_a_file_that_belongs_to_no_message_or_is_not_downloaded_is_404(
    client_a, tenant_a, owner_a, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    pending = stored_media(tenant_a, conversation, channel_a, status="pending")
    with schema_context(tenant_a.schema_name):
        orphan = MediaFile.objects.create(channel=channel_a, direction="out", kind="image", status="ready")
    login(client_a, tenant_a, owner_a)
    assert client_a.get(f"/inbox/media/{pending.pk}/").status_code == 404
    assert client_a.get(f"/inbox/media/{orphan.pk}/").status_code == 404
    assert client_a.post(f"/inbox/media/{pending.pk}/").status_code == 405


# -- how a file is served ------------------------------------------------------------------------------


def test_a_document_is_an_attachment_with_its_name_safely_encoded(client_a, tenant_a, owner_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a,
        conversation,
        channel_a,
        kind="document",
        mime="application/pdf",
        content=PDF,
        filename='Rechnung "März"\r\nX-Evil: 1.pdf',
        direction="out",
    )
    login(client_a, tenant_a, owner_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 200 and body_of(response) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=utf-8''Rechnung%20%22M%C3%A4rz%22" in disposition
    assert "\r" not in disposition and "\n" not in disposition
    assert "X-Evil" not in response


def test_an_svg_sent_as_an_image_is_never_served_inline(client_a, tenant_a, owner_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a, mime="image/svg+xml", content=SVG)
    login(client_a, tenant_a, owner_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    # The thread offers it as a download, never as an <img>.
    html = client_a.get(f"/inbox/m/{media.message_id}/").content.decode()
    assert f'href="/inbox/media/{media.pk}/" download' in html and "<img" not in html


def test_html_claiming_to_be_audio_is_not_served_as_html(client_a, tenant_a, owner_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a, conversation, channel_a, kind="audio", mime="text/html", content=b"<script>x</script>"
    )
    login(client_a, tenant_a, owner_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def bucket_document(tenant: Any, channel: Any) -> MediaFile:
    """A READY document whose file is in the bucket (object storage), for the presigned-redirect tests."""
    conversation = make_conversation(tenant, channel=channel)
    with schema_context(tenant.schema_name):
        message = add_message(tenant, conversation, type="document", text="report.pdf")
        return MediaFile.objects.create(
            channel=channel,
            message=message,
            direction="in",
            kind="document",
            file="whatsapp/alpha/document/2026/01/abc.pdf",
            filename="report.pdf",
            mime_type="application/pdf",
            status="ready",
        )


def bucket_storages(settings: Any) -> dict[str, Any]:
    """STORAGES with an S3-compatible default; signing needs no network."""
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "media-bucket",
                "access_key": "AKIAEXAMPLE",
                "secret_key": "example-secret",
                "endpoint_url": "https://objects.example.test",
                "region_name": "eu-central-1",
                "querystring_expire": 60,
            },
        },
        "staticfiles": settings.STORAGES["staticfiles"],
    }


def test_with_object_storage_the_view_redirects_to_a_short_lived_presigned_url(
    client_a, tenant_a, owner_a, channel_a, settings
):
    media = bucket_document(tenant_a, channel_a)
    s3 = bucket_storages(settings)
    login(client_a, tenant_a, owner_a)
    # Signing needs no network: the URL is computed here and the browser fetches it.
    with override_settings(STORAGES=s3, MEDIA_STORAGE="s3", MEDIA_URL_EXPIRE_SECONDS=60):
        response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("https://objects.example.test/media-bucket/whatsapp/alpha/document/")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
    assert "response-content-disposition=attachment" in location
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_the_thread_links_media_to_the_authenticated_view_and_the_api_does_too(
    client_a, tenant_a, owner_a, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert f'<img src="/inbox/media/{media.pk}/"' in html and "/media/whatsapp/" not in html
    from conversations.api import MediaSerializer

    with schema_context(tenant_a.schema_name):
        assert MediaSerializer(MediaFile.objects.get(pk=media.pk)).data["url"] == f"/inbox/media/{media.pk}/"


# -- a download that failed ----------------------------------------------------------------------------


def test_a_failed_download_shows_its_reason_and_retry_queues_the_download_again(
    client_a, tenant_a, owner_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a,
        conversation,
        channel_a,
        status="failed",
        error="131052 Media download error",
        media_id="1003383421387256",
    )
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/m/{media.message_id}/").content.decode()
    assert "131052 Media download error" in html and "Retry download" in html
    assert f'hx-post="/inbox/media/{media.pk}/retry/"' in html

    sandbox.add_media(PNG, "image/png", media_id="1003383421387256")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(f"/inbox/media/{media.pk}/retry/")
    assert response.status_code == 200 and "Downloading the image" in response.content.decode()
    assert "download_media" in queued_jobs()
    run_jobs()
    with schema_context(tenant_a.schema_name):
        stored = MediaFile.objects.get(pk=media.pk)
        assert stored.status == "ready" and stored.error == ""
        from conversations.models import InboxEvent

        updates = InboxEvent.objects.filter(conversation_id=conversation.pk, payload__type="message.updated")
        assert updates.filter(payload__message=media.message_id).count() >= 2  # retrying, then ready
    assert (
        f'<img src="/inbox/media/{media.pk}/"'
        in client_a.get(f"/inbox/m/{media.message_id}/").content.decode()
    )


def test_a_retry_needs_a_post_with_a_csrf_token(tenant_a, owner_a, channel_a):
    from django.test import Client

    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a, status="failed", error="x")
    client = Client(HTTP_HOST="alpha.localhost", enforce_csrf_checks=True)
    login(client, tenant_a, owner_a)
    assert client.get(f"/inbox/media/{media.pk}/retry/").status_code == 405
    assert client.post(f"/inbox/media/{media.pk}/retry/").status_code == 403
    with schema_context(tenant_a.schema_name):
        assert MediaFile.objects.get(pk=media.pk).status == "failed"


def test_a_file_that_is_ready_cannot_be_retried(client_a, tenant_a, owner_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a)
    login(client_a, tenant_a, owner_a)
    response = client_a.post(f"/inbox/media/{media.pk}/retry/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_retryable"


# -- read receipts and typing ----------------------------------------------------------------------------


def unread_of(tenant: Any, conversation: Conversation) -> int:
    with schema_context(tenant.schema_name):
        return Conversation.objects.get(pk=conversation.pk).unread_count


def test_opening_a_thread_by_get_sends_no_read_receipt_and_keeps_it_unread(
    client_a, tenant_a, owner_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    conversation = make_conversation(tenant_a, messages=2, unread_count=2, channel=channel_a)
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").status_code == 200
        assert client_a.get(f"/inbox/c/{conversation.pk}/").status_code == 200  # the full page too
    run_jobs()
    assert sandbox.state.read_receipts == []
    assert unread_of(tenant_a, conversation) == 2
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(conversation=conversation, read_at__isnull=False).exists()


def test_the_explicit_mark_read_clears_unread_and_sends_one_receipt_for_the_latest_message(
    client_a, tenant_a, owner_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    conversation = make_conversation(tenant_a, messages=3, unread_count=3, channel=channel_a)
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.post(f"/inbox/c/{conversation.pk}/read/").status_code == 204
        assert client_a.post(f"/inbox/c/{conversation.pk}/read/").status_code == 204  # nothing left
    run_jobs()
    with schema_context(tenant_a.schema_name):
        latest = Message.objects.filter(conversation=conversation).order_by("-timestamp")[0]
    assert [(r["status"], r["message_id"]) for r in sandbox.state.read_receipts] == [("read", latest.wamid)]
    assert "typing_indicator" not in sandbox.state.read_receipts[0]
    assert unread_of(tenant_a, conversation) == 0


def test_typing_sends_read_and_typing_at_most_once_per_interval(
    client_a, tenant_a, owner_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    conversation = make_conversation(tenant_a, messages=1, unread_count=1, channel=channel_a)
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert client_a.post(f"/inbox/c/{conversation.pk}/typing/").status_code == 204
    run_jobs()
    with schema_context(tenant_a.schema_name):
        wamid = Message.objects.get(conversation=conversation).wamid
    assert sandbox.state.read_receipts == [
        {
            "phone_number_id": channel_a.phone_number_id,
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
            "typing_indicator": {"type": "text"},
        }
    ]
    assert unread_of(tenant_a, conversation) == 0


def test_no_typing_indicator_for_a_customer_outside_the_24_hour_window(
    client_a, tenant_a, owner_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    conversation = make_conversation(tenant_a, messages=0, channel=channel_a)
    add_message(
        tenant_a, conversation, wamid="wamid.old.1", timestamp=timezone.now() - dt.timedelta(hours=30)
    )
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.post(f"/inbox/c/{conversation.pk}/typing/").status_code == 204
    run_jobs()
    assert sandbox.state.read_receipts == []


def test_mark_read_and_typing_follow_visibility_tenancy_and_method(
    client_a, client_b, tenant_a, tenant_b, owner_b, agent_a, other_agent_a, channel_a
):
    hidden = make_conversation(tenant_a, unread_count=1, channel=channel_a, assignee=other_agent_a)
    login(client_a, tenant_a, agent_a)
    for action in ("read", "typing"):
        assert client_a.post(f"/inbox/c/{hidden.pk}/{action}/").status_code == 404
        assert client_a.get(f"/inbox/c/{hidden.pk}/{action}/").status_code == 405
    login(client_b, tenant_b, owner_b)
    for action in ("read", "typing"):
        assert client_b.post(f"/inbox/c/{hidden.pk}/{action}/").status_code == 404
    client_a.logout()
    assert client_a.post(f"/inbox/c/{hidden.pk}/read/").status_code == 302
    assert unread_of(tenant_a, hidden) == 1


def test_under_asgi_a_local_file_is_streamed_in_chunks_rather_than_read_whole(tenant_a, channel_a, settings):
    from asgiref.sync import async_to_sync

    from conversations import media as media_serving

    conversation = make_conversation(tenant_a, channel=channel_a)
    content = PDF * 40_000  # ~1 MB: several chunks
    media = stored_media(
        tenant_a, conversation, channel_a, kind="document", mime="application/pdf", content=content
    )
    settings.MEDIA_STORAGE = "local"

    async def collect(response: Any) -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]

    with schema_context(tenant_a.schema_name):
        response = media_serving.serve(MediaFile.objects.get(pk=media.pk), asynchronous=True)
    assert response.is_async
    chunks = async_to_sync(collect)(response)
    response.close()
    assert len(chunks) > 1 and b"".join(chunks) == content


def test_behind_nginx_a_local_file_is_handed_over_with_x_accel_redirect(
    client_a, tenant_a, owner_a, channel_a, settings
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a, conversation, channel_a, kind="document", mime="application/pdf", content=PDF
    )
    settings.MEDIA_X_ACCEL_PREFIX = "/protected-media/"
    login(client_a, tenant_a, owner_a)
    response = client_a.get(f"/inbox/media/{media.pk}/")
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{media.file.name}"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_download_pending_for_over_an_hour_offers_a_retry_and_a_fresh_one_does_not(
    client_a, tenant_a, owner_a, channel_a
):
    import datetime as dt

    from django.utils import timezone

    conversation = make_conversation(tenant_a, channel=channel_a)
    fresh = stored_media(tenant_a, conversation, channel_a, status="pending")
    lost = stored_media(tenant_a, conversation, channel_a, status="pending")
    with schema_context(tenant_a.schema_name):
        MediaFile.objects.filter(pk=lost.pk).update(created_at=timezone.now() - dt.timedelta(hours=2))
    login(client_a, tenant_a, owner_a)
    fresh_html = client_a.get(f"/inbox/m/{fresh.message_id}/").content.decode()
    assert "Downloading the image" in fresh_html and "Retry download" not in fresh_html
    assert client_a.post(f"/inbox/media/{fresh.pk}/retry/").status_code == 409
    assert "Retry download" in client_a.get(f"/inbox/m/{lost.message_id}/").content.decode()
    assert client_a.post(f"/inbox/media/{lost.pk}/retry/").status_code == 200


def test_a_word_document_keeps_its_type_and_xhtml_does_not():
    from types import SimpleNamespace

    from conversations.media import _headers

    def served_as(mime: str) -> str:
        media = SimpleNamespace(kind="document", mime_type=mime, filename="f", pk=1, file=None)
        return _headers(media)[0]

    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert served_as(docx) == docx
    assert served_as("application/xhtml+xml") == "application/octet-stream"
    assert served_as("text/html; charset=utf-8") == "application/octet-stream"
    assert served_as("application/x-sh") == "application/octet-stream"
    assert served_as("not a type") == "application/octet-stream"
