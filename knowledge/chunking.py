"""Blocks -> chunks: one section (a heading and what follows it, up to the next heading) at a time, cut at
paragraphs into ~150-400 words, a long paragraph at sentences; a cut inside a section carries the last
sentence or so over (overlap), so a fact on the boundary is in both. Each chunk keeps its heading path
("Prices > Shipping"), which is indexed with extra weight."""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.extract import Block

MIN_WORDS = 150
MAX_WORDS = 400
OVERLAP_WORDS = 40
_SENTENCE = re.compile(r"(?<=[.!?¿¡:;])\s+")


@dataclass(frozen=True)
class Piece:
    heading: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


def _words(text: str) -> int:
    return len(text.split())


def _split_long(paragraph: str) -> list[str]:
    """A paragraph over MAX_WORDS, cut at sentences (or, for one giant sentence, at words)."""
    parts: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in _SENTENCE.split(paragraph):
        words = sentence.split()
        while len(words) > MAX_WORDS:
            if current:
                parts.append(" ".join(current))
                current, count = [], 0
            parts.append(" ".join(words[:MAX_WORDS]))
            words = words[MAX_WORDS:]
        if count + len(words) > MAX_WORDS and current:
            parts.append(" ".join(current))
            current, count = [], 0
        if words:
            current.append(" ".join(words))
            count += len(words)
    if current:
        parts.append(" ".join(current))
    return parts


def _tail(text: str) -> str:
    """The end of a chunk carried into the next: whole sentences, up to OVERLAP_WORDS."""
    sentences = _SENTENCE.split(text)
    tail: list[str] = []
    count = 0
    for sentence in reversed(sentences):
        n = _words(sentence)
        if count + n > OVERLAP_WORDS:
            break
        tail.insert(0, sentence)
        count += n
    return " ".join(tail)


def _section(heading: str, paragraphs: list[str]) -> list[Piece]:
    units: list[str] = []
    for paragraph in paragraphs:
        units.extend(_split_long(paragraph) if _words(paragraph) > MAX_WORDS else [paragraph])
    pieces: list[Piece] = []
    current: list[str] = []
    count = 0
    for unit in units:
        n = _words(unit)
        if current and count + n > MAX_WORDS:
            text = "\n\n".join(current)
            pieces.append(Piece(heading, text))
            overlap = _tail(current[-1])
            current, count = ([overlap] if overlap and overlap != unit else []), _words(overlap)
        current.append(unit)
        count += n
    if current:
        text = "\n\n".join(current)
        if pieces and _words(text) < MIN_WORDS // 3 and pieces[-1].words + _words(text) <= MAX_WORDS * 1.25:
            # A scrap at the end of a section joins the chunk before it rather than standing alone.
            pieces[-1] = Piece(heading, pieces[-1].text + "\n\n" + text)
        else:
            pieces.append(Piece(heading, text))
    return pieces


def chunk_blocks(blocks: list[Block]) -> list[Piece]:
    path: list[tuple[int, str]] = []
    sections: list[tuple[str, list[str]]] = []
    paragraphs: list[str] = []

    def heading_path() -> str:
        return " > ".join(text for _, text in path)[:500]

    def close() -> None:
        if paragraphs:
            sections.append((heading_path(), list(paragraphs)))
            paragraphs.clear()

    for block in blocks:
        if block.level:
            close()
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, " ".join(block.text.split())[:200]))
        else:
            paragraphs.append(block.text)
    close()
    if not sections and path:  # headings only: they are the text
        sections.append(("", [text for _, text in path]))

    pieces: list[Piece] = []
    # Short neighbouring sections under one heading path are merged only when they share it: a section is a
    # unit of meaning, and a 30-word answer stays its own chunk (FAQ-like pages retrieve better that way).
    for heading, section_paragraphs in sections:
        pieces.extend(_section(heading, section_paragraphs))
    return pieces


def chunk_text(text: str) -> list[Piece]:
    from knowledge.extract import plain_blocks

    return chunk_blocks(plain_blocks(text))


# -- language ----------------------------------------------------------------------------------------------

_STOPWORDS = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is in that it for you are with on this be your we our can have at or not",
        "es": "el la de que y en los las del se por un una para con no es su al lo como más pero sus le",
        "pt": "o a de que e do da em um uma para com não os as dos das no na por se é ao seu sua você",
    }.items()
}


def detect_language(text: str) -> str:
    """en, es, pt by stopword counts; "other" when none stands out (full-text search then does not stem)."""
    words = re.findall(r"\w+", text[:20_000].lower())
    if not words:
        return "other"
    counts = {lang: sum(1 for w in words if w in stops) for lang, stops in _STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    ranked = sorted(counts.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1] or (len(words) > 50 and ranked[0] < len(words) * 0.03):
        return "other"
    return best
