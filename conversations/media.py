"""How a stored media file is answered to a browser, once the view has checked who may see it.

Files sit in Django's default storage (config/settings.py, MEDIA_STORAGE): local disk in development,
an S3-compatible bucket in production. Nothing under MEDIA_URL is served; every file goes through
conversations.views.media_file. The bucket is private: an S3 file is a redirect to a presigned URL
that expires within a minute; a local file is streamed by Django, or by nginx (X-Accel-Redirect).

What a customer sends is not trusted: only raster images, audio and video open inline, with the type
they were stored under; everything else (documents, SVG, HTML, anything unknown) is an attachment, and
scriptable types are sent as application/octet-stream, so no file can run script on the inbox's origin.

A local file streamed by Django answers a single byte range (a browser seeking in audio or video; Safari
plays no video without 206 answers); S3 and nginx answer ranges themselves.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header

# Raster images a browser decodes without running anything; SVG is an XML document that can script.
INLINE_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
# Types a browser would render as a page (or run) when opened: never sent under their own name.
SCRIPTABLE = frozenset({"html", "xhtml", "xml", "svg", "xsl", "xslt", "javascript", "ecmascript", "sh"})
MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# The body of a file never changes under its id; a browser may keep it, a shared cache never.
PRIVATE_MAX_AGE = 3600
CHUNK_BYTES = 256 * 1024
# One range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (20 digits hold any file size; longer
# numbers are ignored rather than parsed).
RANGE_RE = re.compile(r"bytes=([0-9]{0,20})-([0-9]{0,20})", re.IGNORECASE)


def base_mime(mime_type: str) -> str:
    base = (mime_type or "").split(";")[0].strip().lower()
    return base if MIME_RE.match(base) else "application/octet-stream"


def effective_mime(media: Any) -> str:
    """The stored type, or (a row without one) the type its stored name implies."""
    if media.mime_type:
        return base_mime(media.mime_type)
    guessed, _ = mimetypes.guess_type(getattr(media.file, "name", "") or media.filename or "")
    return base_mime(guessed or "")


def shows_inline(kind: str, mime_type: str) -> bool:
    """Whether the thread shows the file itself (image, player) rather than a download link."""
    mime = base_mime(mime_type)
    if kind == "document":
        return False
    return mime in INLINE_IMAGES or mime.startswith(("audio/", "video/"))


def display_of(kind: str, mime_type: str) -> str:
    """image, video, audio or file: how the thread presents it."""
    if not shows_inline(kind, mime_type):
        return "file"
    mime = base_mime(mime_type)
    return "image" if mime.startswith("image/") else mime.split("/")[0]


def download_name(media: Any) -> str:
    name = (media.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name:
        return name[:200]
    ext = mimetypes.guess_extension(effective_mime(media)) or ""
    return f"{media.kind or 'file'}-{media.pk}{ext}"


def _headers(media: Any) -> tuple[str, bool, str]:
    """(content type, as attachment, filename)."""
    mime = effective_mime(media)
    inline = shows_inline(media.kind, mime)
    # By word (image/svg+xml, text/html, application/x-sh), not by substring (a .docx's type says
    # "openxmlformats" and keeps its own type).
    if not inline and SCRIPTABLE.intersection(re.split(r"[/+.\-]", mime)):
        mime = "application/octet-stream"
    return mime, not inline, download_name(media)


def byte_range(request: HttpRequest | None, size: int) -> tuple[int, int] | None:
    """The byte range a GET asks for, as (first, last) with last clipped to the file; first >= size
    when it cannot be satisfied (416). None answers the whole file: no Range, a HEAD, any If-Range (we
    have no validator it could match), several ranges, or a malformed one (RFC 9110 lets a server
    ignore all of these)."""
    if request is None or request.method != "GET" or "If-Range" in request.headers:
        return None
    match = RANGE_RE.fullmatch(request.headers.get("Range", "").strip())
    if not match or not any(match.groups()):
        return None
    first, last = match.groups()
    if not first:  # the last `suffix` bytes (`bytes=-0`: none, so unsatisfiable)
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None
    return int(first), min(int(last), size - 1) if last else size - 1


def _part(handle: Any, length: int) -> Iterator[bytes]:
    while length > 0 and (chunk := handle.read(min(CHUNK_BYTES, length))):
        length -= len(chunk)
        yield chunk


async def _async_part(handle: Any, length: int) -> AsyncIterator[bytes]:
    read = sync_to_async(handle.read, thread_sensitive=False)
    while length > 0 and (chunk := await read(min(CHUNK_BYTES, length))):
        length -= len(chunk)
        yield chunk


def _local_file(
    media: Any, mime: str, attachment: bool, filename: str, request: HttpRequest | None, asynchronous: bool
) -> HttpResponseBase:
    """The whole file (200), the one range asked for (206), or 416 for a range past its end."""
    storage, name = media.file.storage, media.file.name
    try:
        size = storage.size(name)
    except FileNotFoundError:
        # Its row says READY but the file is gone (a disk restored without it): as for a missing file.
        raise Http404("This file is no longer stored") from None
    part = byte_range(request, size)
    response: HttpResponseBase
    if part and part[0] >= size:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    else:
        first, last = part or (0, size - 1)
        handle = storage.open(name, "rb")
        response = FileResponse(handle, content_type=mime, as_attachment=attachment, filename=filename)
        if part:
            handle.seek(first)
            response.status_code = 206
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
            response["Content-Length"] = str(last - first + 1)
        if part or asynchronous:
            # Only the part's bytes, in chunks. Under ASGI Django would read a synchronous iterator whole
            # into memory first (a 100 MB document per request): chunks are read in a thread instead.
            # The response closes the file.
            stream = _async_part if asynchronous else _part
            response.streaming_content = stream(handle, last - first + 1)
    response["Accept-Ranges"] = "bytes"
    return response


def _harden(response: HttpResponseBase) -> HttpResponseBase:
    response["X-Content-Type-Options"] = "nosniff"
    # Opened on its own (a new tab), the file gets no rights on our origin whatever it is.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Referrer-Policy"] = "no-referrer"
    return response


def serve(media: Any, *, asynchronous: bool = False, request: HttpRequest | None = None) -> HttpResponseBase:
    """The response for a ready media file the viewer may see (`asynchronous`: served by the ASGI
    handler; `request`: the one whose Range header a local file answers)."""
    storage = media.file.storage
    mime, attachment, filename = _headers(media)
    disposition = content_disposition_header(attachment, filename) or ""
    if settings.MEDIA_STORAGE == "s3":
        # The bucket answers with our headers (S3 overrides them from these signed parameters).
        url = storage.url(
            media.file.name,
            parameters={
                "ResponseContentType": mime,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": f"private, max-age={PRIVATE_MAX_AGE}",
            },
            expire=settings.MEDIA_URL_EXPIRE_SECONDS,
        )
        redirect = HttpResponseRedirect(url)
        # The presigned URL expires: never reuse the redirect.
        patch_cache_control(redirect, private=True, no_store=True)
        return _harden(redirect)
    response: HttpResponseBase
    if settings.MEDIA_X_ACCEL_PREFIX:
        response = HttpResponse(content_type=mime)
        response["X-Accel-Redirect"] = (
            settings.MEDIA_X_ACCEL_PREFIX.rstrip("/") + "/" + quote(media.file.name)
        )
        response["Content-Disposition"] = disposition
    else:
        response = _local_file(media, mime, attachment, filename, request, asynchronous)
    patch_cache_control(response, private=True, max_age=PRIVATE_MAX_AGE)
    return _harden(response)
