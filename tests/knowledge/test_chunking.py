"""Chunking: sizes in the embedder's real tokens, heading paths, whole rows and items,
overlap inside a section only, Q&A chunks, and Markdown to blocks. No Django, no database."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace

import pytest

from knowledge.chunking import (
    MAX_TOKENS,
    Block,
    chunk_elements,
    chunk_qa_pair,
    elements_from_text,
)
from knowledge.embedding import LocalMiniLMEmbedder

PROSE = (
    "Parley answers visitors from a company's own documents. It splits each document into "
    "chunks, embeds them, and stores the vectors. When a visitor asks something, the closest "
    "chunks are retrieved and handed to the language model. Nothing leaves the machine unless "
    "an external provider is configured. "
)


@pytest.fixture(scope="module")
def count() -> object:
    # Only the tokenizer loads here; the model itself is lazy.
    return LocalMiniLMEmbedder().count_tokens


def chunk(blocks: list[Block], count, **options):  # type: ignore[no-untyped-def]
    settings = {"title": "Guide", "chunk_tokens": 60, "overlap_tokens": 15} | options
    return chunk_elements(blocks, count_tokens=count, **settings)


def test_no_chunk_exceeds_the_limit_per_the_real_tokenizer(count) -> None:
    blocks = [
        Block("heading", "Install", 1),
        Block("paragraph", PROSE * 6),
        Block("table_row", " | ".join(["cell with several words"] * 40)),
        Block("paragraph", "x" * 3000),  # one giant "word"
        Block("code", "\n".join(f"print({n})" for n in range(200))),
        Block("list_item", "short item"),
    ]
    for limit in (30, 60, 200):
        drafts = chunk(blocks, count, chunk_tokens=limit)
        assert drafts
        for draft in drafts:
            assert count(draft.text) <= limit
            assert draft.token_count == count(draft.text)
            assert count(draft.embed_text) <= MAX_TOKENS


def test_the_chunk_size_is_clamped_to_what_the_model_reads(count) -> None:
    drafts = chunk([Block("paragraph", PROSE * 20)], count, chunk_tokens=5000)
    assert len(drafts) > 1
    assert all(count(draft.embed_text) <= MAX_TOKENS for draft in drafts)


def test_headings_start_chunks_and_give_the_heading_path(count) -> None:
    blocks = [
        Block("paragraph", "Before any heading."),
        Block("heading", "Installation", 1),
        Block("paragraph", "Pick your system."),
        Block("heading", "Linux", 2),
        Block("paragraph", "Use the package."),
        Block("heading", "Windows", 2),
        Block("paragraph", "Use the installer."),
        Block("heading", "Usage", 1),
        Block("paragraph", "Start it."),
    ]
    drafts = chunk(blocks, count)
    assert [(d.text, d.heading_path) for d in drafts] == [
        ("Before any heading.", []),
        ("Pick your system.", ["Installation"]),
        ("Use the package.", ["Installation", "Linux"]),
        ("Use the installer.", ["Installation", "Windows"]),
        ("Start it.", ["Usage"]),
    ]
    assert [d.ordinal for d in drafts] == [0, 1, 2, 3, 4]
    assert drafts[2].embed_text == "Guide > Installation > Linux\n\nUse the package."


def test_the_document_title_element_is_not_repeated_in_the_path(count) -> None:
    blocks = [Block("title", "Guide"), Block("paragraph", "Text.")]
    assert chunk(blocks, count)[0].heading_path == []


def test_small_blocks_under_one_heading_are_packed_together(count) -> None:
    blocks = [Block("heading", "Prices", 1)] + [
        Block("list_item", f"Plan {n}: {n * 10} euros a month") for n in range(3)
    ]
    drafts = chunk(blocks, count, chunk_tokens=200)
    assert len(drafts) == 1
    assert drafts[0].text.splitlines() == [f"Plan {n}: {n * 10} euros a month" for n in range(3)]


def test_table_rows_and_list_items_are_never_cut_when_they_fit(count) -> None:
    rows = [f"| Plan {n} | {n * 7} euros | {'feature ' * (n % 5 + 1)}|" for n in range(40)]
    items = [f"Step {n}: open the panel and press button number {n}" for n in range(30)]
    blocks = [Block("heading", "Table", 1), *(Block("table_row", r) for r in rows)]
    blocks += [Block("heading", "Steps", 1), *(Block("list_item", i) for i in items)]
    drafts = chunk(blocks, count, chunk_tokens=50)
    assert len(drafts) > 4
    whole = set(rows) | set(items)
    for draft in drafts:
        for line in draft.text.splitlines():
            assert line in whole
    seen = {line for draft in drafts for line in draft.text.splitlines()}
    assert seen == whole


def test_a_long_block_is_split_at_sentence_boundaries(count) -> None:
    drafts = chunk([Block("paragraph", PROSE * 5)], count, overlap_tokens=0)
    assert len(drafts) > 2
    assert all(draft.text.endswith(".") for draft in drafts)


def test_overlap_repeats_the_previous_chunks_tail_within_a_section(count) -> None:
    drafts = chunk([Block("paragraph", PROSE * 5)], count, chunk_tokens=60, overlap_tokens=20)
    assert len(drafts) > 2
    for previous, current in pairwise(drafts):
        last_sentence = previous.text.rsplit(". ", 1)[-1]
        assert current.text.startswith(last_sentence.rstrip("."))
        overlap = current.text[: len(last_sentence)]
        assert count(overlap) <= 20


def test_there_is_no_overlap_across_headings(count) -> None:
    blocks = [
        Block("heading", "A", 1),
        Block("paragraph", "Alpha sentence one."),
        Block("heading", "B", 1),
        Block("paragraph", "Beta sentence one."),
    ]
    assert [d.text for d in chunk(blocks, count)] == ["Alpha sentence one.", "Beta sentence one."]


def test_overlap_never_pushes_out_a_block_that_fits(count) -> None:
    paragraphs = [f"Paragraph {n}. " + "Some words here. " * 8 for n in range(6)]
    drafts = chunk([Block("paragraph", p.strip()) for p in paragraphs], count, chunk_tokens=60)
    texts = "\n\n".join(d.text for d in drafts)
    assert all(p.strip() in texts for p in paragraphs)


def test_pages_are_carried_and_parser_elements_are_accepted(count) -> None:
    element = SimpleNamespace(kind="paragraph", text="On page two.", level=0, page=2)
    draft = chunk_elements(
        [element], title="", chunk_tokens=200, overlap_tokens=30, count_tokens=count
    )[0]
    assert (draft.page, draft.embed_text) == (2, "On page two.")


def test_a_qa_pair_is_one_chunk_with_the_question(count) -> None:
    drafts = chunk_qa_pair("Do you ship to Norway?", "Yes, within 5 days.", count_tokens=count)
    assert [d.text for d in drafts] == ["Q: Do you ship to Norway?\nA: Yes, within 5 days."]
    assert drafts[0].embed_text == drafts[0].text


def test_a_huge_answer_is_split_and_each_piece_repeats_the_question(count) -> None:
    drafts = chunk_qa_pair(
        "What is the refund policy?", PROSE * 10, chunk_tokens=80, count_tokens=count
    )
    assert len(drafts) > 2
    for draft in drafts:
        assert draft.text.startswith("Q: What is the refund policy?\nA: ")
        assert count(draft.text) <= 80


def test_markdown_becomes_blocks() -> None:
    text = (
        "# Guide\n\nIntro line one\nline two.\n\n## Install\n\n- first\n  continued\n* second\n"
        "1. third\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint(1)\n\nprint(2)\n```\n"
        "Closing words."
    )
    blocks = [(b.kind, b.text, b.level) for b in elements_from_text(text)]
    assert blocks == [
        ("heading", "Guide", 1),
        ("paragraph", "Intro line one line two.", 0),
        ("heading", "Install", 2),
        ("list_item", "first continued", 0),
        ("list_item", "second", 0),
        ("list_item", "third", 0),
        ("table_row", "| a | b |", 0),
        ("table_row", "| 1 | 2 |", 0),
        ("code", "print(1)\n\nprint(2)", 0),
        ("paragraph", "Closing words.", 0),
    ]
