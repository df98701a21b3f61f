"""A local media file answers one byte range (206), refuses a range past its end (416) and ignores any
other Range header (200, the whole file), under WSGI and ASGI, without changing who may see it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory
from django_tenants.utils import schema_context

from conftest import login
from conversations.media import CHUNK_BYTES, serve
from conversations.models import MediaFile
from conversations.tests.conftest import make_conversation
from conversations.tests.test_media_view import PDF, body_of, stored_media

CONTENT = bytes(range(256)) * 4  # 1024 bytes, each offset's byte known
BIG = bytes(range(256)) * (3 * CHUNK_BYTES // 256)  # three chunks


@pytest.fixture(autouse=True)
def local_media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path
    settings.MEDIA_STORAGE = "local"
    settings.MEDIA_X_ACCEL_PREFIX = ""


@pytest.fixture
def video(tenant_a: Any, channel_a: Any) -> MediaFile:
    conversation = make_conversation(tenant_a, channel=channel_a)
    return stored_media(tenant_a, conversation, channel_a, kind="video", mime="video/mp4", content=CONTENT)


@pytest.fixture
def signed_in(client_a: Any, tenant_a: Any, owner_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)


def fetch(client: Any, media: MediaFile, range_header: str | None = None, **headers: str) -> Any:
    if range_header is not None:
        headers["Range"] = range_header
    return client.get(f"/inbox/media/{media.pk}/", headers=headers)


# -- the whole file and the ranges it answers ----------------------------------------------------------


def test_the_whole_file_advertises_byte_ranges(signed_in, video):
    response = fetch(signed_in, video)
    assert response.status_code == 200 and body_of(response) == CONTENT
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(CONTENT))
    assert "Content-Range" not in response


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=-5000", 0, 1023),  # a suffix longer than the file: all of it
        ("bytes=1020-99999", 1020, 1023),  # past the end: clipped to the last byte
        ("bytes=1023-1023", 1023, 1023),
        ("BYTES=5-6", 5, 6),  # the unit is case-insensitive
    ],
)
def test_one_range_is_answered_206_with_exactly_its_bytes(signed_in, video, header, first, last):
    response = fetch(signed_in, video, header)
    assert response.status_code == 206
    assert body_of(response) == CONTENT[first : last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0", "bytes=" + "9" * 20 + "-"])
def test_a_range_that_starts_past_the_end_is_416_with_the_size(signed_in, video, header):
    response = fetch(signed_in, video, header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(CONTENT)}"
    assert CONTENT[:16] not in response.content
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",  # several ranges: we answer one or none
        "bytes=0-1, 5-6",
        "garbage",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=9-3",  # last before first: invalid
        "bytes=0-" + "9" * 21,  # a number longer than any file size
        "items=0-9",
        "bytes=\u0663-\u0665",  # Arabic-Indic digits are not digits here
    ],
)
def test_several_or_malformed_ranges_are_ignored_and_the_whole_file_answered(signed_in, video, header):
    response = fetch(signed_in, video, header)
    assert response.status_code == 200 and body_of(response) == CONTENT
    assert "Content-Range" not in response


def test_a_range_with_if_range_gets_the_whole_file(signed_in, video):
    response = fetch(signed_in, video, "bytes=0-9", **{"If-Range": '"anything"'})
    assert response.status_code == 200 and body_of(response) == CONTENT


def test_head_ignores_the_range_and_describes_the_whole_file(signed_in, video):
    response = signed_in.head(f"/inbox/media/{video.pk}/", headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(CONTENT))
    assert response["Accept-Ranges"] == "bytes"
    assert body_of(response) == b""


def test_a_videos_206_keeps_its_inline_type_and_the_hardening_headers(signed_in, video):
    full = fetch(signed_in, video)
    part = fetch(signed_in, video, "bytes=0-1")
    assert part.status_code == 206
    assert part["Content-Type"] == "video/mp4"
    assert not part.get("Content-Disposition", "").startswith("attachment")
    for header in (
        "Content-Type",
        "Content-Disposition",
        "X-Content-Type-Options",
        "Content-Security-Policy",
        "Cross-Origin-Resource-Policy",
        "Referrer-Policy",
        "Cache-Control",
    ):
        assert part.get(header) == full.get(header), header
    assert "sandbox" in part["Content-Security-Policy"] and "private" in part["Cache-Control"]


def test_a_documents_206_stays_an_attachment(signed_in, tenant_a, channel_a):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(
        tenant_a, conversation, channel_a, kind="document", mime="application/pdf", content=PDF
    )
    response = fetch(signed_in, media, "bytes=0-3")
    assert response.status_code == 206 and body_of(response) == b"%PDF"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/pdf"


def test_a_large_range_is_streamed_in_chunks_not_handed_to_the_server_as_the_whole_file(
    signed_in, tenant_a, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a, kind="video", mime="video/mp4", content=BIG)
    first, last = 10, len(BIG) - 11
    response = fetch(signed_in, media, f"bytes={first}-{last}")
    assert response.status_code == 206
    # A file to stream would be sent whole by a server's wsgi.file_wrapper, past the range's end.
    assert response.file_to_stream is None
    chunks = list(response.streaming_content)
    response.close()
    assert len(chunks) > 1 and max(map(len, chunks)) <= CHUNK_BYTES
    assert b"".join(chunks) == BIG[first : last + 1]


# -- who may ask ---------------------------------------------------------------------------------------


def test_an_agent_who_cannot_see_the_conversation_gets_404_with_a_range_too(
    client_a, tenant_a, agent_a, other_agent_a, channel_a
):
    conversation = make_conversation(tenant_a, channel=channel_a, assignee=other_agent_a)
    media = stored_media(tenant_a, conversation, channel_a, kind="video", mime="video/mp4", content=CONTENT)
    login(client_a, tenant_a, agent_a)
    for header in ("bytes=0-9", "bytes=5000-"):
        response = fetch(client_a, media, header)
        assert response.status_code == 404 and "Content-Range" not in response


def test_another_tenants_user_gets_404_with_a_range_too(client_b, tenant_b, owner_b, video):
    login(client_b, tenant_b, owner_b)
    response = fetch(client_b, video, "bytes=0-9")
    assert response.status_code == 404 and "Content-Range" not in response
    assert CONTENT[:10] not in response.content


def test_a_signed_out_visitor_with_a_range_gets_no_bytes(client_a, video):
    response = fetch(client_a, video, "bytes=0-9")
    assert response.status_code == 302 and "Content-Range" not in response


# -- under ASGI ----------------------------------------------------------------------------------------


def asgi_request(range_header: str) -> Any:
    return RequestFactory().get("/", headers={"Range": range_header})


async def collect(response: Any) -> list[bytes]:
    try:
        return [chunk async for chunk in response.streaming_content]
    finally:
        response.close()


@pytest.fixture
def big_video(tenant_a: Any, channel_a: Any) -> MediaFile:
    conversation = make_conversation(tenant_a, channel=channel_a)
    media = stored_media(tenant_a, conversation, channel_a, kind="video", mime="video/mp4", content=BIG)
    with schema_context(tenant_a.schema_name):
        return MediaFile.objects.get(pk=media.pk)


async def test_under_asgi_a_range_is_streamed_in_chunks_of_exactly_its_bytes(big_video):
    first, last = 7, 2 * CHUNK_BYTES + 99
    response = serve(big_video, asynchronous=True, request=asgi_request(f"bytes={first}-{last}"))
    assert response.status_code == 206 and response.is_async
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(BIG)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Content-Type"] == "video/mp4" and response["X-Content-Type-Options"] == "nosniff"
    chunks = await collect(response)
    assert len(chunks) == 3 and max(map(len, chunks)) <= CHUNK_BYTES
    assert b"".join(chunks) == BIG[first : last + 1]


async def test_under_asgi_a_suffix_range_and_the_whole_file(big_video):
    response = serve(big_video, asynchronous=True, request=asgi_request("bytes=-100"))
    assert response.status_code == 206
    assert b"".join(await collect(response)) == BIG[-100:]

    whole = serve(big_video, asynchronous=True, request=asgi_request("bytes=0-1,5-6"))
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes" and whole.is_async
    chunks = await collect(whole)
    assert len(chunks) == 3 and b"".join(chunks) == BIG


async def test_under_asgi_a_range_past_the_end_is_416(big_video):
    response = serve(big_video, asynchronous=True, request=asgi_request(f"bytes={len(BIG)}-"))
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(BIG)}"


def test_a_ready_file_missing_from_disk_is_a_404_not_a_500(signed_in, video):
    video.file.storage.delete(video.file.name)  # a disk restored without it

    assert fetch(signed_in, video).status_code == 404
    assert fetch(signed_in, video, "bytes=0-9").status_code == 404
