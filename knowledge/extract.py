"""Bytes -> structured text: a list of blocks (a heading with its level, or a paragraph). One shape for
every format, so chunking keeps heading paths whatever the upload was."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from knowledge.errors import MESSAGES, KnowledgeError


@dataclass(frozen=True)
class Block:
    text: str
    level: int = 0  # 0: a paragraph; 1-6: a heading of that level


FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


def fail(code: str, message: str | None = None) -> KnowledgeError:
    return KnowledgeError(code, message or MESSAGES[code], field="file")


def detect_format(name: str, data: bytes, content_type: str = "") -> str:
    """The format from the name's extension (or the content type), checked against the bytes: a file whose
    content contradicts its name is refused, not guessed."""
    suffix = PurePath(name or "").suffix.lower()
    # The name's extension decides when there is one (a browser's content type for an unknown extension is
    # a guess); the content type only when the name has none (a web page).
    if suffix:
        fmt = FORMATS.get(suffix, "")
    else:
        fmt = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower(), "")
    if not fmt:
        raise fail("unsupported_type")
    if fmt == "pdf" and not data.lstrip()[:5].startswith(b"%PDF"):
        raise fail("invalid_file")
    if fmt == "docx" and not data.startswith(b"PK"):
        raise fail("invalid_file")
    if fmt in ("text", "markdown", "html") and b"\x00" in data[:8192]:
        raise fail("unsupported_type", "This looks like a binary file, not text.")
    return fmt


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def extract(fmt: str, data: bytes) -> list[Block]:
    if not data:
        raise fail("empty_file")
    if fmt == "text":
        blocks = plain_blocks(decode(data))
    elif fmt == "markdown":
        blocks = markdown_blocks(decode(data))
    elif fmt == "html":
        blocks = html_blocks(decode(data))
    elif fmt == "pdf":
        blocks = pdf_blocks(data)
    elif fmt == "docx":
        blocks = docx_blocks(data)
    else:
        raise fail("unsupported_type")
    blocks = [Block(_clean(b.text), b.level) for b in blocks]
    blocks = [b for b in blocks if b.text]
    if not blocks:
        raise fail("pdf_no_text" if fmt == "pdf" else "no_text")
    return blocks


_SPACES = re.compile(r"[ \t\u00a0\u200b]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def plain_blocks(text: str) -> list[Block]:
    return [Block(p) for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_SETEXT = re.compile(r"^(=+|-+)\s*$")
_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<!\w)[*_](.+?)[*_](?!\w)"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _md_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text


def markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block(_md_inline("\n".join(paragraph))))
            paragraph.clear()

    in_code = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        heading = None if in_code else _MD_HEADING.match(line)
        if heading:
            flush()
            blocks.append(Block(_md_inline(heading.group(2)), len(heading.group(1))))
        elif not in_code and paragraph and len(paragraph) == 1 and _MD_SETEXT.match(line.strip() or "x"):
            title = paragraph.pop()
            blocks.append(Block(_md_inline(title), 1 if line.strip().startswith("=") else 2))
        elif not line.strip():
            flush()
        else:
            paragraph.append(re.sub(r"^\s*([-*+]|\d+[.)]|>)\s+", "", line))
    flush()
    return blocks


class _HtmlBlocks(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "nav", "footer", "form"})
    BLOCK = frozenset(
        {
            "p",
            "div",
            "li",
            "tr",
            "section",
            "article",
            "blockquote",
            "pre",
            "dd",
            "dt",
            "td",
            "th",
            "br",
            "ul",
            "ol",
            "table",
            "main",
            "header",
            "figcaption",
        }
    )
    HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.skipping = 0
        self.heading = 0
        self.title = ""
        self.in_title = False

    def flush(self) -> None:
        text = " ".join("".join(self.parts).split())
        if text:
            self.blocks.append(Block(text, self.heading))
        self.parts = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.HEADINGS:
            self.flush()
            self.heading = self.HEADINGS[tag]
        elif tag in self.BLOCK:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.HEADINGS:
            self.flush()
            self.heading = 0
        elif tag in self.BLOCK:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.skipping:
            self.parts.append(data)


def html_blocks(text: str) -> list[Block]:
    parser = _HtmlBlocks()
    parser.feed(text)
    parser.close()
    parser.flush()
    return parser.blocks


def html_title(text: str) -> str:
    parser = _HtmlBlocks()
    parser.feed(text[:200_000])
    return " ".join(parser.title.split())[:200]


def pdf_blocks(data: bytes) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise fail("pdf_encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except KnowledgeError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise fail("invalid_file") from exc
    except Exception as exc:  # pypdf raises many kinds on a hostile file: none may become a 500
        raise fail("invalid_file") from exc
    blocks: list[Block] = []
    for page in pages:
        blocks.extend(plain_blocks(page))
    if not any(b.text.strip() for b in blocks):
        raise fail("pdf_no_text")
    return blocks


def docx_blocks(data: bytes) -> list[Block]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise fail("invalid_file") from exc
    except Exception as exc:  # a hostile archive: an error on the source, never a 500
        raise fail("invalid_file") from exc
    blocks: list[Block] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        match = re.match(r"(?i)heading\s*(\d)", style)
        level = int(match.group(1)) if match else (1 if style.lower() == "title" else 0)
        blocks.append(Block(paragraph.text, min(level, 6)))
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            blocks.append(Block(" | ".join(c for c in cells if c)))
    return blocks
