"""Knowledge gaps: the questions the bots could not answer, or answered badly, grouped so
that paraphrases of one question form one group, most frequent first; and "answer this",
which turns a group into a Q&A pair that is searchable the moment the request returns.

A gap is a visitor's question whose answer either refused (``answered=False``: nothing
relevant was found) or got a thumbs-down. Answers that failed for another reason (a
provider error, a visitor's stop: ``Message.error`` is set) are not gaps in the knowledge
and are left out. The question is the standalone query when a follow-up was rewritten
(``Message.query``), else the visitor's message just before the answer.

Grouping embeds each distinct question with the local MiniLM model (vectors cached in the
Django cache, so a page view embeds only new questions) and clusters them by average
linkage on cosine similarity, cut at ``SIMILARITY``; docs/gaps.md says how it was tuned.

Answered gaps are remembered on the Q&A source they created (``config["answered_gap"]``):
occurrences of those question texts up to the moment of the answer are hidden; the same
question failing again later is a gap again, and deleting the source brings its gap back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from conversations.models import Message
from knowledge import pipeline
from knowledge import services as knowledge
from knowledge.embedding import local_embedder
from knowledge.models import Document, KnowledgeBase, Source

DEFAULT_DAYS = 30
MAX_QUESTIONS = 2000  # the latest questions of the period read at most (embedding cost)
# Average-linkage cosine similarity at which two groups of questions merge. Tuned on three
# labelled sets of support questions (docs/gaps.md; the sets are in the tests): the best
# precision-weighted F score, in a plateau from 0.50 to 0.56. Lower merges neighbouring
# questions (at 0.46 "do I have to pay to send it back?" joins "how do I get a refund?",
# and "is the app in Spanish?" joins "is there a mobile app?"); higher splits paraphrases
# that share few words (at 0.58 "can I get my money back?" leaves the refund group).
SIMILARITY = 0.52
GAP_CONFIG_KEY = "answered_gap"
EMBEDDING_TTL = 30 * 24 * 3600
_PUNCTUATION = " \t\n?!.,;:¿¡…\"'"


def normalise(text: str) -> str:
    """The identity of a question: case, spacing and surrounding punctuation ignored."""
    return " ".join(text.split()).casefold().strip(_PUNCTUATION)


@dataclass(frozen=True)
class Asked:
    """One occurrence of a gap: a question and the answer that failed it."""

    message_id: uuid.UUID  # the answer
    conversation_id: uuid.UUID
    bot_id: int
    bot_name: str
    bot_public_id: str
    text: str
    asked_at: datetime
    unanswered: bool  # the bot said it did not know (else: answered, rated down)


@dataclass
class Variant:
    text: str
    count: int


@dataclass
class BotRef:
    id: int
    public_id: str
    name: str


@dataclass
class Gap:
    """A group of paraphrases of one question."""

    key: str  # the representative question, normalised
    question: str  # the representative: the most central variant, frequency weighted
    count: int
    unanswered: int
    thumbs_down: int
    last_asked: datetime
    variants: list[Variant]
    bots: list[BotRef]
    conversation_ids: list[uuid.UUID]  # latest first, each once

    @property
    def covers(self) -> list[str]:
        """The question texts an answer to this group resolves."""
        return [variant.text for variant in self.variants]


@dataclass
class GapReport:
    gaps: list[Gap]
    since: datetime
    questions_read: int
    capped: bool  # the period held more questions than MAX_QUESTIONS: the latest were read
    hidden_answered: int  # occurrences hidden because their question was answered since
    threshold: float = SIMILARITY
    bot_ids: list[int] = field(default_factory=list)


# --- Reading ------------------------------------------------------------------------------
def read_questions(since: datetime, bot_id: int | None, limit: int) -> tuple[list[Asked], bool]:
    """The latest gap occurrences since `since` (one query), and whether `limit` cut them."""
    question = (
        Message.objects.filter(
            conversation=OuterRef("conversation"),
            role=Message.Role.USER,
            created_at__lte=OuterRef("created_at"),
        )
        .order_by("-created_at")
        .values("content")[:1]
    )
    rows = (
        Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=since, error="")
        .filter(Q(answered=False) | Q(rating=Message.Rating.DOWN))
        .annotate(question=Subquery(question))
        .order_by("-created_at", "-id")
    )
    if bot_id is not None:
        rows = rows.filter(conversation__bot_id=bot_id)
    values = list(
        rows.values(
            "id",
            "conversation_id",
            "conversation__bot_id",
            "conversation__bot__name",
            "conversation__bot__public_id",
            "query",
            "question",
            "created_at",
            "answered",
        )[: limit + 1]
    )
    asked = []
    for row in values[:limit]:
        text = " ".join((row["query"] or row["question"] or "").split())
        if not normalise(text):
            continue  # no question before the answer (or only punctuation): nothing to group
        asked.append(
            Asked(
                message_id=row["id"],
                conversation_id=row["conversation_id"],
                bot_id=row["conversation__bot_id"],
                bot_name=row["conversation__bot__name"],
                bot_public_id=row["conversation__bot__public_id"],
                text=text,
                asked_at=row["created_at"],
                unanswered=row["answered"] is False,
            )
        )
    return asked, len(values) > limit


def answered_since(since: datetime) -> dict[str, datetime]:
    """Question texts (normalised) answered through "answer this" since `since`, each with
    the latest time it was answered. Sources made before `since` cannot hide anything in
    the period, so they are not read."""
    answered: dict[str, datetime] = {}
    sources = Source.objects.filter(
        kind=Source.Kind.QA, created_at__gte=since, config__has_key=GAP_CONFIG_KEY
    ).values_list("config", "created_at")
    for config, created_at in sources:
        for text in (config.get(GAP_CONFIG_KEY) or {}).get("questions", []):
            if isinstance(text, str) and created_at > answered.get(text, since):
                answered[text] = created_at
    return answered


# --- Embedding and clustering -------------------------------------------------------------
def embed_questions(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors of `texts` from the local MiniLM model, one batch for the texts not in
    the cache. Keys carry the schema (no tenant reads another's entries) and the model's
    backend (int8 and fp32 vectors differ slightly)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    embedder = local_embedder()
    prefix = f"gaps:vec:{connection.schema_name}:{embedder.backend}:"
    keys = [prefix + hashlib.sha256(text.encode()).hexdigest() for text in texts]
    cached = cache.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in cached]
    if missing:
        vectors = embedder.embed_documents([texts[i] for i in missing])
        fresh = {
            keys[i]: np.asarray(v, dtype=np.float32).tobytes()
            for i, v in zip(missing, vectors, strict=True)
        }
        cache.set_many(fresh, timeout=EMBEDDING_TTL)
        cached.update(fresh)
    matrix = np.stack([np.frombuffer(cached[key], dtype=np.float32) for key in keys])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def average_linkage(similarity: np.ndarray, threshold: float) -> list[list[int]]:
    """Agglomerative clustering, average linkage, stopped where no two clusters are at
    least `threshold` similar on average. Nearest-neighbour chain: O(n²) time, one n-by-n
    matrix; deterministic (ties go to the lower index). Clusters list their members in
    index order; clusters come in order of their first member."""
    n = len(similarity)
    sim = np.array(similarity, dtype=np.float64, copy=True)
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    active = np.ones(n, dtype=bool)
    done: list[list[int]] = []
    chain: list[int] = []
    while active.any():
        if not chain:
            chain.append(int(np.argmax(active)))
        a = chain[-1]
        b = int(np.argmax(sim[a]))
        if sim[a, b] < threshold:
            # Merges only average similarities: below the threshold with every cluster
            # now, `a` stays below it for good.
            done.append(members.pop(a))
            active[a] = False
            sim[a, :] = sim[:, a] = -np.inf
            chain.pop()
            continue
        if len(chain) > 1 and sim[a, chain[-2]] >= sim[a, b]:
            b = chain[-2]  # reciprocal nearest neighbours (a tie counts): merge them
        if len(chain) < 2 or b != chain[-2]:
            chain.append(b)
            continue
        chain.pop()
        chain.pop()
        keep, gone = min(a, b), max(a, b)
        merged = (size[keep] * sim[keep] + size[gone] * sim[gone]) / (size[keep] + size[gone])
        sim[keep, :] = sim[:, keep] = merged
        sim[gone, :] = sim[:, gone] = -np.inf
        sim[keep, keep] = -np.inf
        size[keep] += size[gone]
        members[keep] = sorted(members[keep] + members.pop(gone))
        active[gone] = False
    return sorted(done, key=lambda cluster: cluster[0])


# --- Groups ---------------------------------------------------------------------------------
@dataclass
class _Text:
    """A distinct question (normalised) and its occurrences, latest first."""

    key: str
    occurrences: list[Asked]

    @property
    def display(self) -> str:
        # The spelling visitors used most; the latest wins a tie (Counter keeps order).
        return Counter(a.text for a in self.occurrences).most_common(1)[0][0]


def distinct_texts(asked: Sequence[Asked]) -> list[_Text]:
    """Distinct questions, most asked first, then latest, then alphabetical: the order
    clustering sees them in, so the result does not depend on the database's row order."""
    by_key: dict[str, _Text] = {}
    for occurrence in asked:  # latest first
        key = normalise(occurrence.text)
        by_key.setdefault(key, _Text(key, [])).occurrences.append(occurrence)
    return sorted(
        by_key.values(),
        key=lambda t: (-len(t.occurrences), -t.occurrences[0].asked_at.timestamp(), t.key),
    )


def make_gap(texts: list[_Text], similarity: np.ndarray) -> Gap:
    """One group: `similarity` is the members' cosine matrix, in the order of `texts`."""
    counts = np.array([len(t.occurrences) for t in texts], dtype=np.float64)
    centrality = similarity @ counts  # the question closest to all the group's askings
    order = sorted(range(len(texts)), key=lambda i: (-centrality[i], -counts[i], texts[i].key))
    representative = texts[order[0]]
    occurrences = sorted(
        (a for t in texts for a in t.occurrences), key=lambda a: a.asked_at, reverse=True
    )
    bots = {a.bot_id: BotRef(a.bot_id, a.bot_public_id, a.bot_name) for a in occurrences}
    unanswered = sum(a.unanswered for a in occurrences)
    return Gap(
        key=representative.key,
        question=representative.display,
        count=len(occurrences),
        unanswered=unanswered,
        thumbs_down=len(occurrences) - unanswered,
        last_asked=occurrences[0].asked_at,
        variants=sorted(
            (Variant(t.display, len(t.occurrences)) for t in texts),
            key=lambda v: (-v.count, normalise(v.text)),
        ),
        bots=sorted(bots.values(), key=lambda b: (b.name.casefold(), b.id)),
        conversation_ids=list(dict.fromkeys(a.conversation_id for a in occurrences)),
    )


def group(asked: Sequence[Asked], threshold: float = SIMILARITY) -> list[Gap]:
    """Paraphrases grouped, the most asked group first (then the latest asked)."""
    texts = distinct_texts(asked)
    if not texts:
        return []
    vectors = embed_questions([t.key for t in texts])
    similarity = vectors @ vectors.T
    gaps = [
        make_gap([texts[i] for i in cluster], similarity[np.ix_(cluster, cluster)])
        for cluster in average_linkage(similarity, threshold)
    ]
    return sorted(gaps, key=lambda g: (-g.count, -g.last_asked.timestamp(), g.key))


def find_gaps(
    days: int = DEFAULT_DAYS,
    bot_id: int | None = None,
    *,
    limit: int | None = None,
    now: datetime | None = None,
) -> GapReport:
    """The current tenant's knowledge gaps of the last `days` days, optionally one bot's,
    from the latest `limit` (default MAX_QUESTIONS) occurrences."""
    since = (now or timezone.now()) - timedelta(days=days)
    asked, capped = read_questions(since, bot_id, limit or MAX_QUESTIONS)
    answered = answered_since(since)
    open_ = [
        a for a in asked if (when := answered.get(normalise(a.text))) is None or a.asked_at > when
    ]
    return GapReport(
        gaps=group(open_),
        since=since,
        questions_read=len(asked),
        capped=capped,
        hidden_answered=len(asked) - len(open_),
    )


# --- Answering ------------------------------------------------------------------------------
def answer_gap(kb: KnowledgeBase, question: str, answer: str, covers: Sequence[str] = ()) -> Source:
    """Add the question and its answer to `kb` as a Q&A pair, searchable on return.

    The pair is indexed inside the transaction that creates it (a pair embeds in
    milliseconds), so when the transaction commits the pair is already searchable and the
    ingestion that `add_qa_source` queues for a worker finds it indexed and does nothing
    (the pipeline is idempotent). Indexing after the commit instead would race that worker
    on creating the same document rows. A failure anywhere rolls everything back; at worst
    the vector of a rolled-back chunk stays in Chroma, under an id no row will ever take
    (retrieval skips it, `check_index` reports it, `rebuild_index` drops it).

    `covers` are the question texts this answer resolves: the gaps page hides their
    occurrences asked until now.
    """
    question, answer = question.strip(), answer.strip()
    texts = sorted({normalise(text) for text in [question, *covers]} - {""})
    with transaction.atomic():
        source = knowledge.add_qa_source(
            kb, [{"question": question, "answer": answer}], title=f"Answered gap: {question}"[:500]
        )
        source.config = {**source.config, GAP_CONFIG_KEY: {"questions": texts}}
        # Bookkeeping of the creation itself: a plain update, not a second audited change.
        Source.objects.filter(pk=source.pk).update(config=source.config)
        for document_id in pipeline.sync_documents(source):
            pipeline.process(
                Document.objects.select_related("source__knowledge_base").get(pk=document_id)
            )
        knowledge.refresh_source(source.pk)
    return source
