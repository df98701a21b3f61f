"""GET /api/v1/media/<id>/content/: a message's file for API clients, with the inbox's visibility and the
inbox's safe serving (conversations.media.serve)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import MediaFile
from conversations.tests.conftest import make_conversation
from conversations.tests.test_media_view import (
    PNG,
    SVG,
    body_of,
    bucket_document,
    bucket_storages,
    stored_media,
)
from crm.tests.helpers import api_client, assert_error, issue_key


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def key_a(tenant_a: Any) -> str:
    return issue_key(tenant_a, role="supervisor", name="crm sync")


def content_path(media: MediaFile | int) -> str:
    pk = media if isinstance(media, int) else media.pk
    return f"/api/v1/media/{pk}/content/"


def test_a_key_of_the_tenant_downloads_the_file_with_its_type(tenant_a, channel_a, key_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    response = api_client(tenant_a, key_a).get(content_path(media))
    assert response.status_code == 200
    assert body_of(response) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]


def test_head_answers_the_headers_without_the_bytes(tenant_a, channel_a, key_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    response = api_client(tenant_a, key_a).head(content_path(media))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert body_of(response) == b""


def test_a_range_request_gets_the_part_it_asks_for(tenant_a, channel_a, key_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    response = api_client(tenant_a, key_a, HTTP_RANGE="bytes=0-7").get(content_path(media))
    assert response.status_code == 206
    assert body_of(response) == PNG[:8]
    assert response["Content-Range"] == f"bytes 0-7/{len(PNG)}"


@pytest.mark.parametrize("accept", ["image/png", "application/octet-stream", "*/*", "text/html"])
def test_the_file_is_answered_whatever_the_client_accepts(tenant_a, channel_a, key_a, accept):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    response = api_client(tenant_a, key_a, HTTP_ACCEPT=accept).get(content_path(media))
    assert response.status_code == 200 and body_of(response) == PNG


def test_an_error_is_the_apis_json_shape_even_when_the_client_accepts_only_files(tenant_a, key_a):
    response = api_client(tenant_a, key_a, HTTP_ACCEPT="image/png").get(content_path(999_999))
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, "not_found")


def test_a_signed_in_session_downloads_too(client_a, tenant_a, owner_a, channel_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    login(client_a, tenant_a, owner_a)
    response = client_a.get(content_path(media))
    assert response.status_code == 200 and body_of(response) == PNG


# -- who may download ------------------------------------------------------------------------------------


def test_an_agents_key_downloads_from_their_conversation_and_gets_404_for_anothers(
    tenant_a, channel_a, agent_a, other_agent_a
):
    mine = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a, assignee=agent_a), channel_a)
    hidden = stored_media(
        tenant_a, make_conversation(tenant_a, channel=channel_a, assignee=other_agent_a), channel_a
    )
    client = api_client(tenant_a, issue_key(tenant_a, user=agent_a, name="agent key"))
    assert client.get(content_path(mine)).status_code == 200
    response = client.get(content_path(hidden))
    assert_error(response, 404, "not_found")
    assert PNG not in response.content
    assert client.head(content_path(hidden)).status_code == 404


def test_another_tenants_key_gets_404_on_its_host_and_401_on_ours(tenant_a, tenant_b, channel_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    key_b = issue_key(tenant_b, role="owner", name="theirs")
    response = api_client(tenant_b, key_b).get(content_path(media))
    assert_error(response, 404, "not_found")
    assert PNG not in response.content
    # B's key does not exist in A's schema.
    response = api_client(tenant_a, key_b).get(content_path(media))
    assert_error(response, 401)
    assert PNG not in response.content


def test_without_a_key_the_answer_is_401_and_no_bytes(tenant_a, channel_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    response = api_client(tenant_a).get(content_path(media))
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"
    assert PNG not in response.content


def test_a_missing_file_one_of_no_message_and_an_absurd_id_are_404(tenant_a, channel_a, key_a):
    with schema_context(tenant_a.schema_name):
        orphan = MediaFile.objects.create(channel=channel_a, direction="out", kind="image", status="ready")
    client = api_client(tenant_a, key_a)
    for pk in (999_999, orphan.pk, 10**30):
        assert_error(client.get(content_path(pk)), 404, "not_found")


def test_a_ready_file_gone_from_storage_is_404_not_a_server_error(tenant_a, channel_a, key_a):
    from django.core.files.storage import default_storage

    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    default_storage.delete(media.file.name)
    assert_error(api_client(tenant_a, key_a).get(content_path(media)), 404, "not_found")


@pytest.mark.parametrize("state", ["pending", "failed"])
def test_a_file_not_downloaded_yet_or_whose_download_failed_is_409_media_not_ready(
    tenant_a, channel_a, key_a, state
):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a, status=state)
    error = assert_error(api_client(tenant_a, key_a).get(content_path(media)), 409, "media_not_ready")
    assert error["details"] == {"status": state}


def test_a_hidden_file_not_downloaded_yet_is_404_not_409(tenant_a, channel_a, agent_a, other_agent_a):
    conversation = make_conversation(tenant_a, channel=channel_a, assignee=other_agent_a)
    media = stored_media(tenant_a, conversation, channel_a, status="pending")
    client = api_client(tenant_a, issue_key(tenant_a, user=agent_a, name="agent key"))
    assert_error(client.get(content_path(media)), 404, "not_found")


def test_writes_are_not_allowed(tenant_a, channel_a, key_a):
    media = stored_media(tenant_a, make_conversation(tenant_a, channel=channel_a), channel_a)
    client = api_client(tenant_a, key_a)
    assert_error(client.post(content_path(media)), 405)
    assert_error(client.delete(content_path(media)), 405)


# -- served as the inbox serves it -----------------------------------------------------------------------


def test_an_svg_is_an_octet_stream_attachment(tenant_a, channel_a, key_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a, mime="image/svg+xml", content=SVG)
    response = api_client(tenant_a, key_a).get(content_path(media))
    assert response.status_code == 200 and body_of(response) == SVG
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response["Content-Security-Policy"]


def test_html_claiming_to_be_audio_is_an_octet_stream_attachment(tenant_a, channel_a, key_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a, conversation, channel_a, kind="audio", mime="text/html", content=b"<b>x</b>"
    )
    response = api_client(tenant_a, key_a).get(content_path(media))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def test_with_object_storage_the_answer_is_a_presigned_redirect(tenant_a, channel_a, key_a, settings):
    media = bucket_document(tenant_a, channel_a)
    s3 = bucket_storages(settings)
    with override_settings(STORAGES=s3, MEDIA_STORAGE="s3", MEDIA_URL_EXPIRE_SECONDS=60):
        response = api_client(tenant_a, key_a).get(content_path(media))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("https://objects.example.test/media-bucket/whatsapp/alpha/document/")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
    assert "no-store" in response["Cache-Control"]


# -- the link in the API's messages ----------------------------------------------------------------------


def test_messages_carry_an_absolute_content_url_that_the_key_can_open(tenant_a, channel_a, key_a):
    conversation = make_conversation(tenant_a, channel=channel_a, messages=0)
    ready = stored_media(tenant_a, conversation, channel_a)
    pending = stored_media(tenant_a, conversation, channel_a, status="pending")
    client = api_client(tenant_a, key_a)
    response = client.get(f"/api/v1/conversations/{conversation.pk}/messages/")
    assert response.status_code == 200
    media = {row["media"]["id"]: row["media"] for row in response.json()["results"] if row["media"]}
    assert media[ready.pk]["content_url"] == f"http://alpha.localhost/api/v1/media/{ready.pk}/content/"
    assert media[ready.pk]["url"] == f"http://alpha.localhost/inbox/media/{ready.pk}/"
    assert media[pending.pk]["content_url"] is None and media[pending.pk]["url"] is None
    download = client.get(media[ready.pk]["content_url"])
    assert download.status_code == 200 and body_of(download) == PNG


def test_the_openapi_schema_documents_the_download_and_its_errors(client_a):
    schema = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/media/{id}/content/"]["get"]
    responses = operation["responses"]
    assert responses["200"]["content"]["*/*"]["schema"] == {"type": "string", "format": "binary"}
    assert {"206", "302", "401", "404", "409", "429"} <= set(responses)
    assert "media_not_ready" in responses["409"]["description"]
    media = schema["components"]["schemas"]["Media"]["properties"]
    assert "API key" in media["content_url"]["description"]
    assert "browsers" in media["url"]["description"]
