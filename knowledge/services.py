"""Knowledge writes: sources (file, text, web page, FAQ) and their indexing.

Indexing reads and parses outside any transaction, then replaces the source's chunks in one transaction
(delete, insert, tsvector update, status): a reader sees the old chunks or the new ones, never a mix, and a
failure leaves the last good index in place with the source marked failed and the reason.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import PurePath
from typing import Any

import httpcore
import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from knowledge import vectors as vectors_db
from knowledge.chunking import Piece, chunk_blocks, detect_language
from knowledge.embeddings import fold, get_embedder, to_bytes
from knowledge.errors import MESSAGES, KnowledgeError
from knowledge.extract import Block, detect_format, extract, html_title, markdown_blocks
from knowledge.models import Chunk, Faq, Language, Source
from knowledge.retrieval import REGCONFIG, search_vector_sql

log = structlog.get_logger("knowledge")

# Pasted text up to this size is indexed in the request (201); larger, and files and pages, by the job (202).
INLINE_WORDS = 3000
MAX_TEXT_CHARS = 1_000_000
URL_TIMEOUT_SECONDS = 10.0
URL_TOTAL_SECONDS = 30.0


def _title(value: str, fallback: str) -> str:
    title = " ".join((value or "").split())[:200]
    return title or " ".join(fallback.split())[:200] or "Untitled"


def _language(value: str) -> str:
    if value not in Language.values:
        raise KnowledgeError("invalid_language", "Choose auto, en, es, pt or other.", field="language")
    return value


def _enqueue(source: Source) -> None:
    from knowledge.actors import index_source_job

    source_id = source.pk
    transaction.on_commit(lambda: index_source_job.send(source_id))


# -- creating sources --------------------------------------------------------------------------------------


@transaction.atomic
def create_file_source(
    *,
    name: str,
    data: bytes,
    content_type: str = "",
    title: str = "",
    language: str = "auto",
    user: Any = None,
) -> Source:
    """Checks what can be checked now (type, emptiness, size: a 400 and nothing stored), stores the file
    and queues its indexing. What only parsing finds (a PDF without text) fails the source."""
    if len(data) > settings.KNOWLEDGE_MAX_FILE_BYTES:
        raise KnowledgeError(
            "too_large", f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES} bytes.", field="file"
        )
    if not data.strip():
        raise KnowledgeError("empty_file", MESSAGES["empty_file"], field="file")
    fmt = detect_format(name, data, content_type)
    safe_name = PurePath(name or "upload").name[:255]
    source = Source(
        kind=Source.Kind.FILE,
        title=_title(title, PurePath(safe_name).stem),
        language=_language(language),
        file_name=safe_name,
        content_type=fmt,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_by=user,
    )
    # Storage paths are keyed by tenant (ARCHITECTURE.md); the name is ours, never the uploader's.
    schema = connection.schema_name  # type: ignore[attr-defined]
    stored_name = f"{schema}/{uuid.uuid4().hex}{PurePath(safe_name).suffix.lower()}"
    source.file.save(stored_name, ContentFile(data), save=False)
    source.save()
    _enqueue(source)
    return source


def _check_text(text: str) -> str:
    text = (text or "").replace("\x00", "")
    if not text.strip():
        raise KnowledgeError("empty_text", "The text is empty.", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise KnowledgeError(
            "too_large", f"The text is longer than {MAX_TEXT_CHARS} characters.", field="text"
        )
    return text


def create_text_source(*, title: str, text: str, language: str = "auto", user: Any = None) -> Source:
    """Pasted text (Markdown headings are understood). Short text is indexed now; long text by the job."""
    text = _check_text(text)
    with transaction.atomic():
        source = Source.objects.create(
            kind=Source.Kind.TEXT,
            title=_title(title, text.strip().splitlines()[0][:80]),
            language=_language(language),
            text=text,
            size=len(text.encode()),
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            created_by=user,
        )
        if len(text.split()) > INLINE_WORDS:
            _enqueue(source)
            return source
    index_source(source_id=source.pk)
    source.refresh_from_db()
    return source


@transaction.atomic
def create_url_source(*, url: str, title: str = "", language: str = "auto", user: Any = None) -> Source:
    from core.fetch import DEFAULT_PORTS, FetchRefused, addresses_for, check_url, is_operator_host

    url = (url or "").strip()
    if not url:
        raise KnowledgeError("invalid_url", "Enter the page's address.", field="url")
    try:
        # Resolved now too, so a private or unknown address is refused at once (the fetch checks again).
        parsed = check_url(url, resolve_host=True)
        if is_operator_host(parsed.host):
            # Operator hosts (the sandboxes, a gateway) may sit on private addresses for the server's own
            # use; a tenant's URL gets no such pass.
            addresses_for(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme])
    except FetchRefused as exc:
        raise KnowledgeError(exc.code, exc.message, field="url") from exc
    except httpcore.ConnectError as exc:
        raise KnowledgeError("host_not_found", str(exc), field="url") from exc
    source = Source.objects.create(
        kind=Source.Kind.URL,
        title=_title(title, parsed.host),
        language=_language(language),
        url=str(parsed)[:2000],
        created_by=user,
    )
    _enqueue(source)
    return source


def reindex_source(*, source: Source) -> Source:
    """Re-fetch a web page, re-read a file or text: status back to processing, the job does the rest (the
    current chunks keep answering until the new ones replace them)."""
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(
            status=Source.Status.PROCESSING, error_code="", error="", updated_at=timezone.now()
        )
        _enqueue(source)
    source.refresh_from_db()
    return source


def delete_source(*, source: Source) -> None:
    file = source.file
    with transaction.atomic():
        Faq.objects.filter(source=source).delete()
        source.delete()
        if file:
            name, storage = file.name or "", file.storage
            transaction.on_commit(lambda: storage.delete(name))


# -- FAQ pairs ---------------------------------------------------------------------------------------------


def _check_faq(question: str, answer: str) -> tuple[str, str]:
    question = " ".join((question or "").replace("\x00", "").split())
    answer = (answer or "").replace("\x00", "").strip()
    if not question:
        raise KnowledgeError("empty_question", "Enter the question.", field="question")
    if not answer:
        raise KnowledgeError("empty_answer", "Enter the answer.", field="answer")
    if len(question) > 500:
        raise KnowledgeError("too_long", "The question is longer than 500 characters.", field="question")
    if len(answer) > 4000:
        raise KnowledgeError("too_long", "The answer is longer than 4000 characters.", field="answer")
    return question, answer


def _sync_faq_source(faq: Faq) -> None:
    """An approved FAQ is indexed through its own source; a pending one has none."""
    if faq.status != Faq.Status.APPROVED:
        if faq.source_id:
            source = faq.source
            faq.source = None
            faq.save(update_fields=["source", "updated_at"])
            source.delete()  # type: ignore[union-attr]
        return
    text = f"{faq.question}\n\n{faq.answer}"
    if faq.source_id is None:
        faq.source = Source.objects.create(
            kind=Source.Kind.FAQ,
            title=faq.question[:200],
            language=faq.language,
            text=text,
            created_by=faq.created_by,
        )
        faq.save(update_fields=["source", "updated_at"])
    else:
        Source.objects.filter(pk=faq.source_id).update(
            title=faq.question[:200], language=faq.language, text=text, status=Source.Status.PROCESSING
        )
    source_id = faq.source_id
    assert source_id is not None
    transaction.on_commit(lambda: index_source(source_id=source_id))


@transaction.atomic
def create_faq(
    *, question: str, answer: str, status: str = Faq.Status.APPROVED, language: str = "auto", user: Any = None
) -> Faq:
    question, answer = _check_faq(question, answer)
    if status not in Faq.Status.values:
        raise KnowledgeError("invalid_status", "Status is approved or pending.", field="status")
    faq = Faq.objects.create(
        question=question,
        answer=answer,
        status=status,
        language=_language(language),
        created_by=user,
        approved_by=user if status == Faq.Status.APPROVED else None,
    )
    _sync_faq_source(faq)
    return faq


@transaction.atomic
def update_faq(
    *, faq: Faq, question: str | None = None, answer: str | None = None, language: str | None = None
) -> Faq:
    faq = Faq.objects.select_for_update().get(pk=faq.pk)
    faq.question, faq.answer = _check_faq(
        faq.question if question is None else question, faq.answer if answer is None else answer
    )
    if language is not None:
        faq.language = _language(language)
    faq.save()
    _sync_faq_source(faq)
    return faq


@transaction.atomic
def approve_faq(*, faq: Faq, user: Any = None) -> Faq:
    faq = Faq.objects.select_for_update().get(pk=faq.pk)
    if faq.status != Faq.Status.APPROVED:
        faq.status = Faq.Status.APPROVED
        faq.approved_by = user
        faq.save(update_fields=["status", "approved_by", "updated_at"])
        _sync_faq_source(faq)
    return faq


@transaction.atomic
def delete_faq(*, faq: Faq) -> None:
    source_id = faq.source_id
    faq.delete()
    if source_id:
        Source.objects.filter(pk=source_id).delete()


# -- indexing ----------------------------------------------------------------------------------------------


def _fetch_page(source: Source) -> tuple[list[Block], str]:
    from core.fetch import FetchError, FetchRefused, fetch

    try:
        page = fetch(
            "GET",
            source.url,
            headers={"Accept": "text/html, text/plain, application/pdf;q=0.9, */*;q=0.1"},
            max_bytes=settings.KNOWLEDGE_MAX_FILE_BYTES,
            timeout=URL_TIMEOUT_SECONDS,
            total_timeout=URL_TOTAL_SECONDS,
            max_redirects=5,
            cross_origin_redirects=True,  # each hop is checked again (address, scheme, port)
        )
    except FetchRefused as exc:
        code = "address_not_allowed" if exc.code == "address_not_allowed" else "fetch_failed"
        raise KnowledgeError(code, exc.message, field="url") from exc
    except FetchError as exc:
        code = {"timeout": "timeout", "too_large": "too_large"}.get(exc.code, "fetch_failed")
        raise KnowledgeError(code, exc.message, field="url") from exc
    if page.status_code != 200:
        raise KnowledgeError("http_error", f"The page answered HTTP {page.status_code}.", field="url")
    content_type = page.headers.get("content-type", "").split(";")[0].strip().lower()
    name = PurePath(page.url.split("?")[0]).name
    if content_type in ("", "application/octet-stream"):
        fmt = detect_format(name if "." in name else "page.html", page.content)
    else:
        fmt = detect_format("", page.content, content_type)
    title = html_title(page.text) if fmt == "html" else ""
    return extract(fmt, page.content), title


def _blocks(source: Source) -> tuple[list[Block], dict[str, Any]]:
    updates: dict[str, Any] = {}
    if source.kind == Source.Kind.FAQ:
        question, _, answer = source.text.partition("\n\n")
        return [Block(question, 1), Block(answer or question)], updates
    if source.kind == Source.Kind.TEXT:
        return markdown_blocks(source.text), updates
    if source.kind == Source.Kind.FILE:
        try:
            with source.file.open("rb") as fh:
                data = fh.read()
        except (OSError, ValueError) as exc:
            raise KnowledgeError("invalid_file", "The stored file is missing.") from exc
        return extract(detect_format(source.file_name, data, source.content_type), data), updates
    blocks, title = _fetch_page(source)
    if title and source.title in ("", source.url, _title("", httpx_host(source.url))):
        updates["title"] = title
    return blocks, updates


def httpx_host(url: str) -> str:
    import httpx

    try:
        return httpx.URL(url).host
    except (httpx.InvalidURL, TypeError, ValueError):
        return ""


def _replace_chunks(source_id: int, pieces: list[Piece], language: str, vectors: Any, model: str) -> int:
    rows = [
        Chunk(
            source_id=source_id,
            ordinal=i,
            heading=piece.heading[:500],
            text=piece.text,
            language=language,
            embedding=to_bytes(vectors[i]),
            embedding_model=model,
            tokens=len(piece.text.split()),
        )
        for i, piece in enumerate(pieces)
    ]
    Chunk.objects.filter(source_id=source_id).delete()
    Chunk.objects.bulk_create(rows, batch_size=500)
    write_search_vectors(rows, language)
    if rows and vectors_db.serves(model, len(vectors[0])) and vectors_db.available(connection):
        with connection.cursor() as cursor:
            vectors_db.write(cursor, [r.pk for r in rows], vectors)
    return len(rows)


def write_search_vectors(rows: list[Chunk], language: str) -> None:
    """One UPDATE per 500 chunks: the tsvectors of their accent-folded heading and text."""
    config = REGCONFIG.get(language, "simple")
    expression = search_vector_sql(config, "v.heading", "v.text")
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            cursor.execute(
                f"""UPDATE knowledge_chunk c SET search_vector = {expression}
                      FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, heading, text)
                     WHERE c.id = v.id""",
                [[r.pk for r in batch], [fold(r.heading) for r in batch], [fold(r.text) for r in batch]],
            )


def _fail(source_id: int, code: str, message: str) -> None:
    Source.objects.filter(pk=source_id).update(
        status=Source.Status.FAILED, error_code=code[:40], error=message[:500], updated_at=timezone.now()
    )


def index_source(*, source_id: int) -> Source | None:
    """Extract, chunk, embed and swap in the chunks of one source. Errors fail the source with a code."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    try:
        blocks, updates = _blocks(source)
        pieces = chunk_blocks(blocks)
        if not pieces:
            raise KnowledgeError("no_text", MESSAGES["no_text"])
        text = "\n".join(p.text for p in pieces)
        language = source.language if source.language in REGCONFIG else detect_language(text)
        if source.language == Language.OTHER:
            language = "other"
        embedder = get_embedder()
        vectors = embedder.embed([f"{p.heading}\n{p.text}" if p.heading else p.text for p in pieces])
    except KnowledgeError as exc:
        log.info("knowledge_index_failed", source=source_id, code=exc.code)
        _fail(source_id, exc.code, exc.message)
        return Source.objects.filter(pk=source_id).first()
    with transaction.atomic():
        locked = Source.objects.select_for_update().filter(pk=source_id).first()
        if locked is None:  # deleted meanwhile
            return None
        count = _replace_chunks(source_id, pieces, language, vectors, embedder.name)
        if source.kind in (Source.Kind.FILE, Source.Kind.URL):
            updates["text"] = text[:MAX_TEXT_CHARS]
        if source.language == Language.AUTO:
            updates["language"] = language if language in REGCONFIG else Language.OTHER
        Source.objects.filter(pk=source_id).update(
            status=Source.Status.READY,
            error_code="",
            error="",
            chunk_count=count,
            indexed_at=timezone.now(),
            updated_at=timezone.now(),
            **updates,
        )
    log.info("knowledge_indexed", source=source_id, chunks=count, embedder=embedder.name)
    return Source.objects.get(pk=source_id)
