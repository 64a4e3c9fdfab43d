"""Structure-aware chunking: parsed elements in, chunk drafts sized in the embedder's tokens.

Headings start a new chunk and set its heading path; small blocks under one heading are
packed together; paragraphs, list items and table rows stay whole when they fit; only a
block bigger than a chunk is split (sentences first, then words, then characters). When a
section spills into another chunk, the new one starts with the previous chunk's tail (whole
blocks or sentences) so a fact stated across the boundary stays retrievable.

Sizes are measured with the embedder's own ``count_tokens``, and each chunk's ``embed_text``
(title and heading path, then the text) fits the model's input, which for all-MiniLM-L6-v2
is 256 word pieces: tokens past that would be silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30
MAX_TOKENS = 254  # all-MiniLM-L6-v2: 256 positions less [CLS] and [SEP]

Counter = Callable[[str], int]
_HEADINGS = {"title", "heading"}
_LINE_KINDS = {"list_item", "table_row"}  # joined with one newline, like the source
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


class ElementLike(Protocol):
    """What the parser's ``Element`` and our ``Block`` share."""

    kind: str
    text: str
    level: int
    page: int | None


@dataclass(slots=True)
class Block:
    kind: str
    text: str
    level: int = 0
    page: int | None = None


@dataclass(slots=True)
class ChunkDraft:
    text: str
    heading_path: list[str]
    token_count: int
    ordinal: int
    page: int | None = None
    embed_text: str = ""


@dataclass(slots=True)
class _Piece:
    kind: str
    text: str
    tokens: int
    page: int | None


@dataclass
class _Builder:
    """Packs the pieces of one section into chunks of at most ``budget`` tokens."""

    count: Counter
    budget: int
    overlap: int
    out: list[list[_Piece]] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)

    @staticmethod
    def size(pieces: list[_Piece]) -> int:
        return sum(p.tokens for p in pieces) + max(0, len(pieces) - 1)  # ~1 per separator

    def add(self, piece: _Piece) -> None:
        """Append a piece (never bigger than the budget), starting a new chunk if needed."""
        if self.size([*self.pieces, piece]) <= self.budget:
            self.pieces.append(piece)
            return
        tail = self._tail()
        self.flush()
        # The overlap is a courtesy: it never cuts or pushes out a block.
        fits = self.size([*tail, piece]) <= self.budget
        self.pieces = [*tail, piece] if fits else [piece]

    def flush(self) -> None:
        if self.pieces:
            self.out.append(self.pieces)
        self.pieces = []

    def _tail(self) -> list[_Piece]:
        """Whole trailing blocks, else trailing sentences, within the overlap budget."""
        tail: list[_Piece] = []
        for piece in reversed(self.pieces):
            if sum(p.tokens for p in tail) + piece.tokens + len(tail) <= self.overlap:
                tail.insert(0, piece)
                continue
            if not tail and piece.kind not in _LINE_KINDS:
                sentences = [s for s in _SENTENCE_END.split(piece.text) if s.strip()]
                kept: list[str] = []
                for sentence in reversed(sentences):
                    candidate = " ".join([sentence, *kept])
                    if self.count(candidate) > self.overlap:
                        break
                    kept.insert(0, sentence)
                if kept:
                    text = " ".join(kept)
                    tail = [_Piece(piece.kind, text, self.count(text), piece.page)]
            break
        return tail


def _join(pieces: list[_Piece]) -> str:
    parts: list[str] = []
    for previous, piece in zip([None, *pieces], pieces, strict=False):
        if previous is not None:
            same_list = previous.kind in _LINE_KINDS and piece.kind == previous.kind
            parts.append("\n" if same_list else "\n\n")
        parts.append(piece.text)
    return "".join(parts)


def split_text(text: str, limit: int, count: Counter) -> list[str]:
    """Split one over-long text into pieces of at most ``limit`` tokens: at sentence (or
    line) ends where possible, then at words, then (for a giant "word") at characters."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        candidate = f"{current} {sentence}" if current else sentence
        if count(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if count(sentence) <= limit:
            current = sentence
        else:
            *whole, current = _split_units(sentence.split(), " ", limit, count)
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces


def _split_units(units: list[str], sep: str, limit: int, count: Counter) -> list[str]:
    """Greedy longest prefixes that fit, found by binary search (few tokenizer calls)."""
    pieces: list[str] = []
    start = 0
    while start < len(units):
        low, high = start + 1, len(units)
        while low < high:
            middle = (low + high + 1) // 2
            if count(sep.join(units[start:middle])) <= limit:
                low = middle
            else:
                high = middle - 1
        piece = sep.join(units[start:low])
        if count(piece) > limit:  # one unit alone is too long: cut it by characters
            pieces.extend(_split_units(list(piece), "", limit, count))
        else:
            pieces.append(piece)
        start = low
    return pieces


def join_context(title: str, path: list[str]) -> str:
    """ "Title > Heading > Subheading", skipping empty parts (stored as Chunk.context)."""
    return " > ".join(part for part in [title, *path] if part)


def embed_text(context: str, text: str) -> str:
    """What is embedded for a chunk: its context, a blank line, its text."""
    return f"{context}\n\n{text}" if context else text


def _fit_context(context: str, max_tokens: int, count: Counter) -> str:
    """Cap the title/heading prefix at a quarter of the input, keeping its start."""
    cap = max_tokens // 4
    if not context or count(context) <= cap:
        return context
    return _split_units(context.split(), " ", cap, count)[0]


def _kind(element: ElementLike) -> str:
    return str(getattr(element.kind, "value", element.kind))


def chunk_elements(
    elements: Iterable[ElementLike],
    *,
    title: str,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: Counter,
    max_tokens: int = MAX_TOKENS,
) -> list[ChunkDraft]:
    """Turn a parsed document into chunk drafts, in document order."""
    chunk_tokens = max(16, min(chunk_tokens, max_tokens))
    overlap_tokens = max(0, min(overlap_tokens, chunk_tokens // 2))
    headings: list[tuple[int, str]] = []
    sections: list[tuple[list[str], _Builder]] = []
    builder: _Builder | None = None

    def section() -> _Builder:
        nonlocal builder
        if builder is None:
            path = [text for _, text in headings]
            context = _fit_context(join_context(title, path), max_tokens, count_tokens)
            # The text's budget leaves room for the prefix the model also reads.
            prefix = count_tokens(context + "\n\n") if context else 0
            budget = max(16, min(chunk_tokens, max_tokens - prefix))
            builder = _Builder(count_tokens, budget, min(overlap_tokens, budget // 2))
            sections.append((path, builder))
        return builder

    for element in elements:
        kind, text = _kind(element), (element.text or "").strip()
        if not text:
            continue
        if kind in _HEADINGS:
            if builder is not None:
                builder.flush()
            builder = None
            if kind == "title" and text == title:
                headings.clear()
                continue
            level = max(1, element.level or 1)
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, text))
            continue
        target = section()
        tokens = count_tokens(text)
        if tokens <= target.budget:
            target.add(_Piece(kind, text, tokens, element.page))
            continue
        # Leave room for the overlap, which the pieces of a split block always get.
        for part in split_text(text, target.budget - target.overlap, count_tokens):
            target.add(_Piece("paragraph", part, count_tokens(part), element.page))
    if builder is not None:
        builder.flush()

    drafts: list[ChunkDraft] = []
    for path, done in sections:
        context = _fit_context(join_context(title, path), max_tokens, count_tokens)
        for pieces in done.out:
            text = _join(pieces)
            # Token counts are not always additive across joins; re-check the real size.
            for part in (
                [text]
                if count_tokens(text) <= done.budget
                else split_text(text, done.budget, count_tokens)
            ):
                drafts.append(
                    ChunkDraft(
                        text=part,
                        heading_path=list(path),
                        token_count=count_tokens(part),
                        ordinal=len(drafts),
                        page=pieces[0].page,
                        embed_text=embed_text(context, part),
                    )
                )
    return drafts


def chunk_qa_pair(
    question: str,
    answer: str,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    count_tokens: Counter,
    max_tokens: int = MAX_TOKENS,
) -> list[ChunkDraft]:
    """One "Q: …\\nA: …" chunk, so a visitor's question near the stored one retrieves it; a
    long answer is split, each piece repeating the question."""
    limit = max(16, min(chunk_tokens, max_tokens))
    question = " ".join(question.split())
    # A question may take at most half the chunk, so every piece keeps room for its answer.
    question = _split_units(question.split(), " ", limit // 2, count_tokens)[0] if question else ""
    head = f"Q: {question}\nA: "
    room = max(8, limit - count_tokens(head) - 1)
    answer = answer.strip()
    parts = [answer] if count_tokens(answer) <= room else split_text(answer, room, count_tokens)
    drafts = []
    for ordinal, part in enumerate(parts or [""]):
        text = head + part
        drafts.append(ChunkDraft(text, [], count_tokens(text), ordinal, None, text))
    return drafts


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def elements_from_text(text: str) -> list[Block]:
    """Pasted plain text or Markdown to blocks: ``#`` headings, bullet and numbered lists,
    pipe tables, fenced code, and blank-line separated paragraphs."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(Block("paragraph", " ".join(line.strip() for line in paragraph)))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if _FENCE.match(line):
            end_paragraph()
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            code: list[str] = []
            while index < len(lines) and not lines[index].strip().startswith(fence):
                code.append(lines[index])
                index += 1
            index += 1  # the closing fence
            if "\n".join(code).strip():
                blocks.append(Block("code", "\n".join(code).strip("\n")))
        elif heading := _HEADING.match(line):
            end_paragraph()
            blocks.append(Block("heading", heading.group(2), level=len(heading.group(1))))
        elif bullet := _BULLET.match(line):
            end_paragraph()
            blocks.append(Block("list_item", bullet.group(1).strip()))
        elif line.strip().startswith("|"):
            end_paragraph()
            if not _TABLE_RULE.match(line):
                blocks.append(Block("table_row", line.strip()))
        elif not line.strip():
            end_paragraph()
        elif blocks and blocks[-1].kind == "list_item" and line.startswith((" ", "\t")):
            # An indented continuation line belongs to the list item above.
            blocks[-1].text += " " + line.strip()
        else:
            paragraph.append(line)
    end_paragraph()
    return blocks
