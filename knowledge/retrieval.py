"""Hybrid retrieval: the passages of some knowledge bases that answer a question.

Two searches run over the knowledge bases, in the current tenant's schema, side by side (the
vector one on a pool thread):

* vector: the question embedded with each knowledge base's embedder, k-NN in its Chroma
  collection (one per knowledge base, so no metadata filter sits on the hot path);
* keyword: PostgreSQL full text over ``Chunk.search_vector``. ``websearch_to_tsquery`` ANDs
  every word, and a natural question rarely has all its words in one passage (it found a
  right page in the top 5 for 57% of the Python docs questions, against 86% for this), so
  rows are selected on *any* of the question's rarest words, within an expected number of
  rows (word frequencies come from PostgreSQL's own statistics on the column), and ranked
  by ``ts_rank`` over all its words. A question that uses search syntax (a quoted phrase,
  an excluded -word) is matched by ``websearch_to_tsquery`` as written.

The two ranked lists are fused by reciprocal rank fusion (RRF orders the results), near
duplicates are dropped, and each candidate gets a ``score`` in [0, 1] that does not depend
on which list found it (the cosine similarity from its stored embedding, raised by keyword
evidence; see ``score``): the bot's relevance threshold applies to it, and an empty list
means "nothing relevant", the bot's cue to say it does not know. See docs/retrieval.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from django.db.backends.utils import CursorWrapper

from knowledge import index
from knowledge.models import Chunk, Document, KnowledgeBase

MODES = ("hybrid", "vector", "keyword")
MAX_TOP_K = 50
RRF_K = 60
MIN_CANDIDATES = 20  # per list: fusion needs more than the top_k of each side
KEYWORD_ROW_CAP = 600  # rows ranked by ts_rank at most: it runs on every matching row
MATCH_BUDGET = 600  # rows the selecting lexemes are expected to match, together
COMMON_LEXEME = 0.05  # in more than 5% of a tenant's chunks: too common to select rows on
# Two passages of the best page give an answer its context; the cap leaves room in the top 5
# for three other documents (measured: docs/retrieval.md).
MAX_PER_DOCUMENT = 2
DUPLICATE_OVERLAP = 0.8  # share of the shorter passage's word triples found in a kept one
KEYWORD_WEIGHT = 0.4  # see score()
DEFAULT_THRESHOLD = 0.4  # calibrated for MiniLM on the Python docs (docs/retrieval.md)
STATS_TTL = 300.0  # seconds a schema's lexeme frequencies are cached
SNIPPET_CHARS = 200
SEARCH_SYNTAX = re.compile(r'"[^"]+"|(?:^|\s)-\w')  # a quoted phrase, an excluded -word


@dataclass
class Result:
    chunk_id: str
    text: str
    score: float  # relevance in [0, 1], compared with Bot.relevance_threshold
    vector_score: float | None  # cosine similarity, when the vector search found the chunk
    keyword_score: float | None  # ts_rank, when the full-text search found it
    rrf: float  # reciprocal rank fusion score: orders the results
    heading_path: list[str]
    page: int | None
    snippet: str
    document: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "text": self.text,
            "score": round(self.score, 4),
            "chunk_id": self.chunk_id,
            "heading_path": self.heading_path,
            "page": self.page,
            "snippet": self.snippet,
            "vector_score": rounded(self.vector_score),
            "keyword_score": rounded(self.keyword_score),
            "document": dict(self.document),
        }


def retrieve(
    knowledge_bases: Sequence[KnowledgeBase],
    query: str,
    *,
    top_k: int = 5,
    threshold: float = 0.0,
    mode: str = "hybrid",
    max_per_document: int | None = MAX_PER_DOCUMENT,
) -> list[Result]:
    """The passages of ``knowledge_bases`` that answer ``query``, best first (RRF order),
    each scoring at least ``threshold``. Empty: nothing relevant. Runs in the current
    tenant's schema; only chunks of the given knowledge bases are ever returned.

    ``max_per_document`` caps the passages taken from one document (None or 0: no cap).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    query = " ".join(query.split())
    kbs = list({kb.pk: kb for kb in knowledge_bases}.values())
    if not query or not kbs:
        return []
    top_k = max(1, min(int(top_k), MAX_TOP_K))
    want = max(MIN_CANDIDATES, 3 * top_k)
    # The vector side (embedding on ONNX threads, then waiting on Chroma) runs on a pool
    # thread while this one waits on PostgreSQL. Collection names read the schema from
    # this thread's connection, so they are resolved here.
    names = {kb.pk: kb.collection_name for kb in kbs}
    vector_side = _pool.submit(_vector_side, kbs, names, query, want if mode != "keyword" else 0)
    with connection.cursor() as cursor:
        terms = query_terms(query, cursor)
        keyword_hits = _keyword_search(cursor, kbs, terms, want) if mode != "vector" else []
        vectors, vector_hits = vector_side.result()
        vector_scores, keyword_scores = dict(vector_hits), dict(keyword_hits)
        fused = fuse([list(vector_scores), list(keyword_scores)])
        rows = _hydrate(cursor, kbs, list(fused), terms)
    candidates = []
    for chunk_id, rrf in fused.items():
        row = rows.get(chunk_id)
        if row is None:  # a vector whose row is gone, or a chunk of another knowledge base
            continue
        cosine = _cosine(vectors[row["knowledge_base_id"]], row["embedding"])
        result = _result(row, rrf, score(cosine, terms.coverage(row["present"])))
        result.vector_score = vector_scores.get(chunk_id)
        result.keyword_score = keyword_scores.get(chunk_id)
        candidates.append((result, cosine))
    # RRF ties (one list's first against the other's first) go to the closer meaning.
    candidates.sort(key=lambda item: (-item[0].rrf, -item[1], item[0].chunk_id))
    results = select(
        [result for result, _ in candidates],
        threshold=threshold,
        top_k=top_k,
        max_per_document=max_per_document,
    )
    for result in results:
        result.snippet = snippet(result.text, query)
    return results


def select(
    candidates: Sequence[Result], *, threshold: float, top_k: int, max_per_document: int | None
) -> list[Result]:
    """The first ``top_k`` candidates that clear the threshold, repeat no passage already
    taken, and stay within ``max_per_document`` passages of one document."""
    duplicates = _Duplicates()
    per_document: dict[Any, int] = {}
    chosen: list[Result] = []
    for result in candidates:
        if result.score < threshold:
            continue
        document = result.document["id"]
        if max_per_document and per_document.get(document, 0) >= max_per_document:
            continue
        if duplicates.repeats(result.text):
            continue
        per_document[document] = per_document.get(document, 0) + 1
        chosen.append(result)
        if len(chosen) == top_k:  # candidates past this point need no duplicate check
            break
    return chosen


def _result(row: dict[str, Any], rrf: float, relevance: float) -> Result:
    return Result(
        chunk_id=row["id"],
        text=row["text"],
        score=relevance,
        vector_score=None,
        keyword_score=None,
        rrf=rrf,
        heading_path=row["heading_path"] or [],
        page=row["page"],
        snippet="",
        document={
            "id": row["document_id"],
            "title": row["title"],
            "url": row["url"],
            "source_id": row["source_id"],
            "knowledge_base_id": row["knowledge_base_id"],
        },
    )


# --- Scoring ----------------------------------------------------------------------------
def score(cosine: float, coverage: float) -> float:
    """Relevance in [0, 1]: the cosine similarity, raised by keyword evidence.

    ``coverage`` is the IDF-weighted share of the question's words that the passage holds.
    Partial coverage is common between unrelated texts (an off-topic question shares a word
    or two with many passages), so it counts only near 1 (the fourth power): a passage with
    every informative word of the question (an exact name, a code) closes
    ``KEYWORD_WEIGHT`` of the gap between its cosine and 1. Calibrated on the Python docs
    (docs/retrieval.md): it keeps identifier look-ups above the threshold without
    answering off-topic questions.
    """
    cosine = max(0.0, min(1.0, cosine))
    return cosine + KEYWORD_WEIGHT * coverage**4 * (1.0 - cosine)


def fuse(lists: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) to the ids it holds."""
    fused: dict[str, float] = {}
    for ranked in lists:
        for rank, id_ in enumerate(ranked, start=1):
            fused[id_] = fused.get(id_, 0.0) + 1.0 / (k + rank)
    return fused


def _cosine(query: np.ndarray, embedding: bytes | memoryview | None) -> float:
    if embedding is None:
        return 0.0
    vector = np.frombuffer(bytes(embedding), dtype=np.float32)
    if vector.shape != query.shape:
        return 0.0
    norm = float(np.linalg.norm(vector) * np.linalg.norm(query))
    return float(vector @ query) / norm if norm else 0.0


# --- Vector side ------------------------------------------------------------------------
def query_vectors(kbs: Sequence[KnowledgeBase], query: str) -> dict[int, np.ndarray]:
    """The query embedded once per distinct embedder, by knowledge base id."""
    from knowledge.pipeline import embedder_for

    by_embedder: dict[tuple[str, str], np.ndarray] = {}
    vectors = {}
    for kb in kbs:
        key = (kb.embedder, kb.embedder_api_key or "")
        if key not in by_embedder:
            vector = embedder_for(kb).embed_query(query)
            by_embedder[key] = np.asarray(vector, dtype=np.float32)
        vectors[kb.pk] = by_embedder[key]
    return vectors


def _vector_side(
    kbs: Sequence[KnowledgeBase], names: dict[int, str], query: str, want: int
) -> tuple[dict[int, np.ndarray], list[tuple[str, float]]]:
    """The query vectors and (when ``want``) the k-NN hits over every collection, closest
    first. Touches no database: it runs on a pool thread."""
    vectors = query_vectors(kbs, query)
    if not want:
        return vectors, []
    hits = [
        (hit.id, hit.similarity)
        for kb in kbs
        for hit in index.query(names[kb.pk], vectors[kb.pk].tolist(), want)
    ]
    hits.sort(key=lambda hit: -hit[1])
    return vectors, hits[:want]


_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retrieval")


# --- Keyword side -----------------------------------------------------------------------
@dataclass
class Terms:
    """The question's lexemes: all of them rank rows, the informative ones select rows."""

    lexemes: list[str]
    match: list[str] = field(default_factory=list)
    match_all: bool = False  # rows must hold every selecting lexeme (else any of them)
    syntax: str = ""  # websearch_to_tsquery's query, when the question uses search syntax
    weights: dict[str, float] = field(default_factory=dict)  # inverse document frequency

    def coverage(self, present: Sequence[str]) -> float:
        """IDF-weighted share of the lexemes found in a passage holding ``present``."""
        total = sum(self.weights.get(lexeme, 1.0) for lexeme in self.lexemes)
        found = sum(self.weights.get(lexeme, 1.0) for lexeme in set(present))
        return found / total if total else 0.0

    @property
    def rank_query(self) -> str:
        return tsquery_any(self.lexemes)

    @property
    def match_query(self) -> str:
        if self.syntax:
            return self.syntax
        return tsquery_all(self.match) if self.match_all else tsquery_any(self.match)


def _quoted(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_any(lexemes: Sequence[str]) -> str:
    """A tsquery text matching any of the (already normalised) lexemes."""
    return " | ".join(map(_quoted, lexemes))


def tsquery_all(lexemes: Sequence[str]) -> str:
    """A tsquery text matching all of the (already normalised) lexemes."""
    return " & ".join(map(_quoted, lexemes))


def query_terms(query: str, cursor: CursorWrapper | None = None) -> Terms:
    """The question's lexemes (PostgreSQL's english configuration, as the index has them),
    and the rarest of them, within ``MATCH_BUDGET`` expected rows, to select rows on."""
    # Dotted and slashed identifiers ("functools.singledispatch", "json.loads") are one
    # token to the parser; their parts are added so "singledispatch" alone matches too.
    text = f"{query} {re.sub(r'[._/:]+', ' ', query)}"
    with contextlib.ExitStack() as stack:
        cursor = cursor or stack.enter_context(connection.cursor())
        cursor.execute(
            "SELECT tsvector_to_array(to_tsvector('english', %s)), "
            "websearch_to_tsquery('english', %s)::text",
            [text, query],
        )
        found, websearch = cursor.fetchone()
    lexemes = sorted(found or [])
    if not lexemes:
        return Terms(lexemes=[])
    stats = lexeme_stats()
    match, match_all = _selecting(lexemes, stats)
    weights = {lexeme: -math.log(stats.frequency(lexeme)) for lexeme in lexemes}
    return Terms(
        lexemes=lexemes,
        match=match,
        match_all=match_all,
        weights=weights,
        # Search syntax ("a phrase", -word) says exactly which rows to match: honour it.
        syntax=websearch if SEARCH_SYNTAX.search(query) and websearch else "",
    )


def _selecting(lexemes: list[str], stats: LexemeStats) -> tuple[list[str], bool]:
    """The lexemes that select rows, and whether a row needs all of them.

    Any of the rarest lexemes, while they stay informative and the rows they are expected
    to bring stay within ``MATCH_BUDGET`` (each row matched is a row ranked). When even the
    rarest is too common ("How do I make an HTTP request?"), rows need the rarest *two* (or
    more, until the expected rows fit): a word that common selects nothing on its own.
    """
    by_rarity = sorted(lexemes, key=stats.frequency)
    if not stats.rows:  # no statistics yet: every lexeme, the row cap bounds the work
        return by_rarity, False
    if stats.frequency(by_rarity[0]) * stats.rows > MATCH_BUDGET:
        needed, expected = 0, stats.rows
        while needed < len(by_rarity) and expected > MATCH_BUDGET:
            # As if the lexemes were independent: optimistic, they tend to co-occur.
            expected *= stats.frequency(by_rarity[needed])
            needed += 1
        return sorted(by_rarity[:needed]), True
    match: list[str] = []
    expected = 0.0
    for lexeme in by_rarity:
        rows = stats.frequency(lexeme) * stats.rows
        if match and (stats.frequency(lexeme) > COMMON_LEXEME or expected + rows > MATCH_BUDGET):
            break
        match.append(lexeme)
        expected += rows
    return sorted(match), False


@dataclass(frozen=True)
class LexemeStats:
    """How common lexemes are in a schema's chunks (PostgreSQL's statistics)."""

    frequencies: dict[str, float]
    rows: float  # chunks in the table, as last counted by ANALYZE

    def frequency(self, lexeme: str) -> float:
        # A lexeme the statistics do not list is rarer than every lexeme they list.
        floor = min(self.frequencies.values(), default=0.002) / 2
        return self.frequencies.get(lexeme, floor)


_stats: dict[str, tuple[float, LexemeStats]] = {}
_stats_lock = threading.Lock()


def lexeme_stats() -> LexemeStats:
    """Share of the schema's chunks holding each common lexeme, from the planner's
    statistics on ``search_vector`` (ANALYZE keeps the most common elements of a tsvector
    column, and autovacuum keeps them fresh), and the table's row count. Cached per
    schema for ``STATS_TTL``: they drift slowly."""
    schema = connection.schema_name
    now = time.monotonic()
    with _stats_lock:
        cached = _stats.get(schema)
        if cached and cached[0] > now:
            return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs, "
            "(SELECT reltuples FROM pg_class WHERE oid = %s::regclass) FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s AND attname = %s",
            [Chunk._meta.db_table, Chunk._meta.db_table, "search_vector"],
        )
        row = cursor.fetchone()
    if row and row[0]:
        # The last three frequencies are the minimum, maximum and null share, not lexemes.
        stats = LexemeStats(dict(zip(row[0], row[1], strict=False)), max(0.0, row[2] or 0.0))
    else:  # never analysed (a new tenant): no pruning; the row cap still holds
        stats = LexemeStats({}, 0.0)
    with _stats_lock:
        _stats[schema] = (now + STATS_TTL, stats)
    return stats


def _keyword_search(
    cursor: CursorWrapper, kbs: Sequence[KnowledgeBase], terms: Terms, want: int
) -> list[tuple[str, float]]:
    if not terms.match:
        return []
    sql = f"""
        SELECT c.id, ts_rank(c.search_vector, %(rank)s::tsquery, 1) AS rank
        FROM (
            SELECT c.id, c.search_vector
            FROM {Chunk._meta.db_table} c
            WHERE c.search_vector @@ %(match)s::tsquery AND c.knowledge_base_id = ANY(%(kbs)s)
            LIMIT %(cap)s
        ) c
        ORDER BY rank DESC, c.id
        LIMIT %(want)s
    """  # noqa: S608 - table names come from the models, values are parameters
    cursor.execute(
        sql,
        {
            "rank": terms.rank_query,
            "match": terms.match_query,
            "kbs": [kb.pk for kb in kbs],
            "cap": KEYWORD_ROW_CAP,
            "want": want,
        },
    )
    return [(id_, float(rank)) for id_, rank in cursor.fetchall()]


# --- Rows -------------------------------------------------------------------------------
def _hydrate(
    cursor: CursorWrapper, kbs: Sequence[KnowledgeBase], ids: list[str], terms: Terms
) -> dict[str, dict[str, Any]]:
    """The candidates' rows with their citation and the query lexemes each holds, restricted
    to the given knowledge bases (a Chroma id never reaches another knowledge base's row)."""
    if not ids:
        return {}
    # Documents by a lateral lookup per row (OFFSET 0 keeps the planner from flattening
    # it): with a plain join it hashed every document of the tenant, 3 ms at 2,000.
    sql = f"""
        SELECT c.id, c.text, c.heading_path, c.page, c.embedding, c.document_id,
               c.knowledge_base_id, d.title, d.url, d.source_id,
               ARRAY(SELECT x.lexeme FROM unnest(%(lexemes)s::text[], %(queries)s::text[])
                     AS x(lexeme, query) WHERE c.search_vector @@ x.query::tsquery) AS present
        FROM {Chunk._meta.db_table} c
        CROSS JOIN LATERAL (
            SELECT d.title, d.url, d.source_id FROM {Document._meta.db_table} d
            WHERE d.id = c.document_id OFFSET 0
        ) d
        WHERE c.id = ANY(%(ids)s) AND c.knowledge_base_id = ANY(%(kbs)s)
    """  # noqa: S608 - table names come from the models, values are parameters
    cursor.execute(
        sql,
        {
            "lexemes": terms.lexemes,
            "queries": [_quoted(lexeme) for lexeme in terms.lexemes],
            "ids": ids,
            "kbs": [kb.pk for kb in kbs],
        },
    )
    columns = [column.name for column in cursor.description]
    rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:  # a raw cursor leaves jsonb as text (Django decodes it per field)
        if isinstance(row["heading_path"], str):
            row["heading_path"] = json.loads(row["heading_path"])
    return {row["id"]: row for row in rows}


# --- Duplicates, diversity, snippets ----------------------------------------------------
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Duplicates:
    """Passages taken so far, to recognise one that repeats them: the same words, or word
    triples mostly found in a taken passage (the same paragraph on two pages, the overlap
    between neighbouring chunks)."""

    def __init__(self) -> None:
        self.digests: set[str] = set()
        self.shingles: list[set[int]] = []

    def repeats(self, text: str) -> bool:
        words = _words(text)
        digest = hashlib.sha1(" ".join(words).encode()).hexdigest()  # noqa: S324 - not security
        if digest in self.digests:
            return True
        triples = {hash(tuple(words[i : i + 3])) for i in range(max(1, len(words) - 2))}
        for other in self.shingles:
            if len(triples & other) >= DUPLICATE_OVERLAP * min(len(triples), len(other)):
                return True
        self.digests.add(digest)
        self.shingles.append(triples)
        return False


def drop_duplicates(results: Sequence[Result]) -> list[Result]:
    """The results without the passages that repeat an earlier one."""
    duplicates = _Duplicates()
    return [result for result in results if not duplicates.repeats(result.text)]


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
        "how", "i", "in", "is", "it", "of", "on", "or", "the", "to", "what", "when", "where",
        "which", "who", "why", "with", "you", "your", "my", "me", "we",
    }
)  # fmt: skip


def snippet(text: str, query: str, size: int = SNIPPET_CHARS) -> str:
    """About ``size`` characters of ``text`` around the sentence holding most query words."""
    text = " ".join(text.split())
    if len(text) <= size:
        return text
    # Five-letter prefixes stand in for stems: "parsing" finds "parse", "parser".
    wanted = {word[:5] for word in _words(query) if word not in _STOP and len(word) > 2}
    best, best_hits, offset = 0, 0, 0
    for part in _SENTENCE.split(text):
        start = text.find(part, offset)
        hits = len(wanted & {word[:5] for word in _words(part)})
        if hits > best_hits:
            best, best_hits = start, hits
        offset = start + len(part)
    start = max(0, min(best, len(text) - size))
    end = start + size
    if end < len(text):
        end = text.rfind(" ", start, end) if text.rfind(" ", start, end) > start else end
    excerpt = text[start:end].strip()
    return ("…" if start else "") + excerpt + ("…" if end < len(text) else "")
