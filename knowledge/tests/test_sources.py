"""Sources of every kind become chunks; bad input fails clearly; re-indexing is all or nothing."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from knowledge import services
from knowledge.errors import KnowledgeError
from knowledge.models import Chunk, Source
from knowledge.tests.documents import docx_bytes, pdf_bytes

pytestmark = pytest.mark.usefixtures("inline_jobs")


def _upload(name: str, data: bytes, **kwargs) -> Source:
    source = services.create_file_source(name=name, data=data, **kwargs)
    source.refresh_from_db()
    return source


def _chunks(source: Source) -> list[Chunk]:
    return list(Chunk.objects.filter(source=source).order_by("ordinal"))


def test_it_indexes_a_text_file(in_a):
    source = _upload("prices.txt", b"Haircut: 20 euros.\n\nColouring: 45 euros.")
    assert source.status == "ready" and source.chunk_count == 1
    assert "Colouring" in _chunks(source)[0].text
    assert source.content_type == "text" and len(source.sha256) == 64


def test_it_keeps_markdown_heading_paths(in_a):
    text = "# Prices\n\n## Shipping\n\nShipping is **5 euros**.\n\n## Returns\n\nReturns within [30 days](x)."
    source = _upload("faq.md", text.encode())
    chunks = _chunks(source)
    assert [c.heading for c in chunks] == ["Prices > Shipping", "Prices > Returns"]
    assert chunks[0].text == "Shipping is 5 euros."
    assert chunks[1].text == "Returns within 30 days."


def test_it_reads_html_without_scripts_or_navigation(in_a):
    html = (
        b"<html><head><title>T</title><script>var secret = 1;</script></head><body><nav>Menu</nav>"
        b"<h1>Hours</h1><p>Open from 9 to 5.</p><footer>cookies</footer></body></html>"
    )
    chunks = _chunks(_upload("page.html", html))
    assert chunks[0].heading == "Hours" and chunks[0].text == "Open from 9 to 5."
    assert not any("secret" in c.text or "Menu" in c.text or "cookies" in c.text for c in chunks)


def test_it_extracts_a_pdf(in_a):
    source = _upload("prices.pdf", pdf_bytes(["Price list", "A haircut costs 20 euros."]))
    assert source.status == "ready", source.error
    assert "haircut costs 20 euros" in _chunks(source)[0].text


def test_it_reads_docx_headings(in_a):
    source = _upload(
        "guide.docx", docx_bytes([("Delivery", "We deliver in 2 days."), ("Returns", "30 days.")])
    )
    assert source.status == "ready", source.error
    assert [c.heading for c in _chunks(source)] == ["Delivery", "Returns"]


def test_pasted_text_is_indexed_at_once_and_language_detected(in_a):
    source = services.create_text_source(
        title="Envíos", text="Los pedidos se envían en dos días y el envío es gratis para los clientes."
    )
    assert source.status == "ready"
    assert source.language == "es"
    assert _chunks(source)[0].language == "es"


def test_a_long_section_is_cut_near_400_words_with_overlap(in_a):
    sentences = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(200))
    source = services.create_text_source(title="Long", text=f"# Topic\n\n{sentences}")
    chunks = _chunks(source)
    assert len(chunks) >= 2
    assert all(len(c.text.split()) <= 450 for c in chunks)
    last_of_first = chunks[0].text.split(". ")[-1].rstrip(".")
    assert last_of_first in chunks[1].text  # the boundary sentence is in both
    assert all(c.heading == "Topic" for c in chunks)


def test_an_faq_pair_is_a_chunk_under_its_question(in_a):
    faq = services.create_faq(question="Do you ship abroad?", answer="Yes, to all of Europe.")
    chunk = Chunk.objects.get(source=faq.source)
    assert (chunk.heading, chunk.text) == ("Do you ship abroad?", "Yes, to all of Europe.")
    pending = services.create_faq(question="Gift cards?", answer="Yes.", status="pending")
    assert pending.source is None
    services.approve_faq(faq=pending)
    pending.refresh_from_db()
    assert pending.status == "approved" and Chunk.objects.filter(source=pending.source).exists()
    services.update_faq(faq=faq, answer="Only to Spain and Portugal.")
    assert Chunk.objects.get(source=faq.source).text == "Only to Spain and Portugal."
    services.delete_faq(faq=faq)
    assert not Source.objects.filter(pk=chunk.source_id).exists()


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("virus.exe", b"MZ\x90\x00", "unsupported_type"),
        ("sheet.xlsx", b"PK\x03\x04", "unsupported_type"),
        ("empty.txt", b"", "empty_file"),
        ("blank.md", b"   \n\n ", "empty_file"),
        ("fake.pdf", b"hello, not a pdf", "invalid_file"),
        ("fake.docx", b"plain text", "invalid_file"),
        ("binary.txt", b"\x00\x01\x02 data", "unsupported_type"),
    ],
)
def test_a_bad_upload_is_refused_and_nothing_is_stored(in_a, name, data, code):
    with pytest.raises(KnowledgeError) as error:
        services.create_file_source(name=name, data=data)
    assert error.value.code == code
    assert not Source.objects.exists()


def test_a_file_over_the_limit_is_refused(in_a, settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 1000
    with pytest.raises(KnowledgeError) as error:
        services.create_file_source(name="big.txt", data=b"x" * 1001)
    assert error.value.code == "too_large"
    assert not Source.objects.exists()


def test_a_pdf_without_text_fails_with_its_reason(in_a):
    source = _upload("scan.pdf", pdf_bytes(None))
    assert (source.status, source.error_code) == ("failed", "pdf_no_text")
    assert "no text" in source.error
    assert not Chunk.objects.filter(source=source).exists()


def test_a_damaged_pdf_fails_with_its_reason(in_a):
    source = _upload("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    assert source.status == "failed" and source.error_code in ("invalid_file", "pdf_no_text")


def test_empty_pasted_text_and_an_empty_faq_are_refused(in_a):
    with pytest.raises(KnowledgeError) as error:
        services.create_text_source(title="x", text="  \n ")
    assert error.value.code == "empty_text"
    with pytest.raises(KnowledgeError) as error:
        services.create_faq(question="Q?", answer=" ")
    assert error.value.code == "empty_answer"
    assert not Source.objects.exists()


# -- atomic re-indexing ------------------------------------------------------------------------------------


def test_reindexing_replaces_chunks_whole(in_a):
    source = _upload("a.md", b"# One\n\nFirst version.")
    old_ids = {c.pk for c in _chunks(source)}
    source.file.save(
        "alpha/changed.md", ContentFile(b"# One\n\nSecond version.\n\n# Two\n\nMore."), save=True
    )
    services.reindex_source(source=source)
    source.refresh_from_db()
    chunks = _chunks(source)
    assert [c.text for c in chunks] == ["Second version.", "More."]
    assert not old_ids & {c.pk for c in chunks}
    assert source.status == "ready" and source.chunk_count == 2


def test_a_failure_while_writing_chunks_leaves_the_old_ones(in_a, monkeypatch):
    source = services.create_text_source(title="t", text="# One\n\nThe original text.")
    before = [(c.pk, c.text) for c in _chunks(source)]
    Source.objects.filter(pk=source.pk).update(text="# One\n\nNew text.\n\n# Two\n\nAnd more.")

    def broken_update(*args, **kwargs):
        raise RuntimeError("the database went away half-way")

    monkeypatch.setattr(services, "write_search_vectors", broken_update)  # fails after delete + insert
    with pytest.raises(RuntimeError):
        services.index_source(source_id=source.pk)
    assert [(c.pk, c.text) for c in _chunks(source)] == before


def test_a_failed_refresh_keeps_the_last_good_passages(in_a):
    source = _upload("a.txt", b"Good content.")
    source.file.save("alpha/bad.txt", ContentFile(b""), save=True)
    services.reindex_source(source=source)
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "empty_file")
    assert [c.text for c in _chunks(source)] == ["Good content."]
