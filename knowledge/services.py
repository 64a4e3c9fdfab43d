"""Write paths of the knowledge app, shared by the admin, the API, commands and tasks."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from knowledge import index, pipeline, retrieval
from knowledge.chunking import embed_text
from knowledge.models import Chunk, Document, KnowledgeBase, Source, SourceFile

MAX_QA_PAIRS = 5000
MAX_TEXT_CHARS = 2_000_000


def start_ingest(source: Source) -> None:
    """Queue the source's ingestion once the surrounding transaction commits."""
    from knowledge.tasks import ingest_source

    schema = connection.schema_name
    source_id = source.pk

    def send() -> None:
        ingest_source.apply_async(args=[source_id], headers={"_schema_name": schema})

    transaction.on_commit(send)


# --- Knowledge bases --------------------------------------------------------------------
def update_knowledge_base(kb: KnowledgeBase, changes: dict[str, Any]) -> KnowledgeBase:
    if "embedder" in changes and changes["embedder"] != kb.embedder and kb.has_content():
        raise ValidationError(
            {
                "embedder": "The embedder is fixed once the knowledge base has content; rebuild "
                "it in a new knowledge base to change embedders."
            }
        )
    for name, value in changes.items():
        setattr(kb, name, value)
    kb.full_clean()
    kb.save()
    return kb


def delete_knowledge_base(kb: KnowledgeBase) -> None:
    collection = kb.collection_name
    with transaction.atomic():
        kb.delete()
        transaction.on_commit(lambda: index.drop(collection))


# --- Sources ----------------------------------------------------------------------------
def add_text_source(kb: KnowledgeBase, title: str, text: str) -> Source:
    title, text = title.strip(), text.strip()
    if not text:
        raise ValidationError({"text": "The text is empty."})
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError({"text": f"The text is longer than {MAX_TEXT_CHARS:,} characters."})
    check_document_quota(1)
    with transaction.atomic():
        source = Source.objects.create(
            knowledge_base=kb,
            kind=Source.Kind.TEXT,
            title=title or text[:80],
            config={"text": text},
        )
        start_ingest(source)
    return source


def clean_pairs(pairs: Any) -> list[dict[str, str]]:
    if not isinstance(pairs, list) or not pairs:
        raise ValidationError({"pairs": "Give at least one {question, answer} pair."})
    if len(pairs) > MAX_QA_PAIRS:
        raise ValidationError({"pairs": f"At most {MAX_QA_PAIRS} pairs per source."})
    cleaned, errors = [], {}
    for number, pair in enumerate(pairs, start=1):
        question = str((pair or {}).get("question", "")).strip() if isinstance(pair, dict) else ""
        answer = str((pair or {}).get("answer", "")).strip() if isinstance(pair, dict) else ""
        if not question or not answer:
            errors[str(number)] = "Both a question and an answer are needed."
        cleaned.append({"question": question, "answer": answer})
    if errors:
        raise ValidationError({"pairs": [f"pair {k}: {v}" for k, v in errors.items()]})
    return cleaned


def add_qa_source(kb: KnowledgeBase, pairs: Any, title: str = "") -> Source:
    cleaned = clean_pairs(pairs)
    check_document_quota(len(cleaned))
    with transaction.atomic():
        source = Source.objects.create(
            knowledge_base=kb,
            kind=Source.Kind.QA,
            title=title.strip() or f"{len(cleaned)} Q&A pair(s)",
            config={"pairs": cleaned},
        )
        start_ingest(source)
    return source


def parse_qa_csv(data: bytes) -> list[dict[str, str]]:
    """Q&A pairs from a CSV with `question` and `answer` columns (a header row is required)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": "The CSV file is not UTF-8 text."}) from None
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if "question" not in columns or "answer" not in columns:
        raise ValidationError({"file": "The CSV needs a header row with question and answer."})
    return [
        {"question": row.get(columns["question"]) or "", "answer": row.get(columns["answer"]) or ""}
        for row in reader
        if any((value or "").strip() for value in row.values() if isinstance(value, str))
    ]


@dataclass
class FileOutcome:
    name: str
    source: Source | None = None
    error: str = ""
    duplicate: bool = False


def add_file_sources(kb: KnowledgeBase, files: list[tuple[str, bytes]]) -> list[FileOutcome]:
    """One source per file. Each file is checked on its own (size, real type, archive
    safety): a bad file gets an error and the others go on. An identical file already in
    the knowledge base is not added twice."""
    from knowledge.parsing import ParseError, check_upload

    outcomes = []
    room = check_document_quota(0)
    for name, data in files:
        name = (name or "upload").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:255]
        if room <= 0:
            outcomes.append(FileOutcome(name=name, error="The knowledge quota is used up."))
            continue
        try:
            mime_type = check_upload(data, name, max_bytes=settings.PARLEY_MAX_UPLOAD_BYTES)
        except ParseError as exc:
            outcomes.append(FileOutcome(name=name, error=str(exc)))
            continue
        digest = hashlib.sha256(data).hexdigest()
        existing = (
            Source.objects.filter(knowledge_base=kb, file__sha256=digest)
            .select_related("file")
            .first()
        )
        if existing:
            outcomes.append(FileOutcome(name=name, source=existing, duplicate=True))
            continue
        with transaction.atomic():
            source = Source.objects.create(
                knowledge_base=kb,
                kind=Source.Kind.FILE,
                title=name,
                config={"mime_type": mime_type},
            )
            SourceFile.objects.create(
                source=source, name=name, size=len(data), sha256=digest, data=data
            )
            start_ingest(source)
        room -= 1
        outcomes.append(FileOutcome(name=name, source=source))
    return outcomes


def add_web_source(
    kb: KnowledgeBase, kind: str, data: dict[str, Any], title: str = "", schedule: str = "off"
) -> Source:
    """A url, urls, sitemap or crawl source; every URL passes the SSRF guard first."""
    from knowledge.web_sources import web_config

    if kind not in Source.WEB_KINDS:
        raise ValidationError({"kind": f"Not a web source kind: {kind!r}."})
    if schedule not in Source.Schedule.values:
        raise ValidationError({"schedule": "Use off, daily or weekly."})
    try:
        config = web_config(kind, data)
    except ValueError as exc:
        raise ValidationError({"url": str(exc)}) from None
    pages = len(config.get("urls", [])) or 1
    room = check_document_quota(pages)
    if kind in {Source.Kind.SITEMAP, Source.Kind.CRAWL} and room < 10**9:
        # Never fetch more pages than the quota leaves room for.
        config["max_pages"] = min(int(config.get("max_pages") or room), room)
    default_title = config.get("url") or f"{len(config.get('urls', []))} pages"
    with transaction.atomic():
        source = Source.objects.create(
            knowledge_base=kb,
            kind=kind,
            title=(title.strip() or default_title)[:500],
            config=config,
            schedule=schedule,
        )
        start_ingest(source)
    return source


def reingest(source: Source) -> None:
    """Run the source again ("Sync now" for web sources): unchanged documents are skipped."""
    Source.objects.filter(pk=source.pk).update(
        status=Source.Status.PENDING, error="", cancel_requested=False
    )
    start_ingest(source)


sync_source = reingest


def set_schedule(source: Source, schedule: str) -> None:
    if schedule not in Source.Schedule.values:
        raise ValidationError({"schedule": "Use off, daily or weekly."})
    if schedule != Source.Schedule.OFF and not source.is_web:
        raise ValidationError({"schedule": "Only web sources are synced on a schedule."})
    source.schedule = schedule
    source.save(update_fields=["schedule", "updated_at"])


def cancel(source: Source) -> bool:
    """Ask a running sync to stop: the fetch phase and queued documents check the flag."""
    if source.status not in {Source.Status.PENDING, Source.Status.RUNNING}:
        return False
    Source.objects.filter(pk=source.pk).update(cancel_requested=True)
    return True


SCHEDULE_INTERVALS = {
    Source.Schedule.DAILY: timedelta(days=1),
    Source.Schedule.WEEKLY: timedelta(days=7),
}


def due_sources() -> list[Source]:
    """Web sources of the current tenant whose schedule says a sync is due."""
    now = timezone.now()
    due = []
    for source in Source.objects.exclude(schedule=Source.Schedule.OFF).exclude(
        status__in=[Source.Status.PENDING, Source.Status.RUNNING]
    ):
        last = source.last_synced_at or source.created_at
        if now - last >= SCHEDULE_INTERVALS[source.schedule] - timedelta(minutes=5):
            due.append(source)
    return due


def delete_source(source: Source) -> None:
    collection = source.knowledge_base.collection_name
    with transaction.atomic():
        ids = list(Chunk.objects.filter(document__source=source).values_list("id", flat=True))
        source.delete()
        transaction.on_commit(lambda: index.delete(collection, ids))


def refresh_source(source_id: int) -> Source | None:
    """Recompute a source's counters and status from its documents (derived, so a retried
    or duplicated task can never count twice)."""
    with transaction.atomic():
        source = Source.objects.select_for_update().filter(pk=source_id).first()
        if source is None:
            return None
        was_finished = source.finished_at is not None
        counts = source.documents.aggregate(
            total=Count("id"),
            done=Count("id", filter=Q(status__in=[Document.Status.READY, Document.Status.EMPTY])),
            failed=Count("id", filter=Q(status=Document.Status.FAILED)),
        )
        source.documents_total = counts["total"]
        source.documents_done = counts["done"]
        source.documents_failed = counts["failed"]
        source.chunks = Chunk.objects.filter(document__source=source).count()
        outcomes = source.documents.aggregate(
            indexed=Count("id", filter=Q(outcome=Document.Outcome.INDEXED)),
            unchanged=Count("id", filter=Q(outcome=Document.Outcome.UNCHANGED)),
        )
        source.documents_indexed = outcomes["indexed"]
        source.documents_unchanged = outcomes["unchanged"]
        finished = counts["done"] + counts["failed"]
        pending = source.documents.filter(
            status__in=[Document.Status.PENDING, Document.Status.PROCESSING]
        )
        if source.cancel_requested:
            source.status = Source.Status.CANCELLED
            source.finished_at = source.finished_at or timezone.now()
        elif counts["total"] and finished < counts["total"] and pending.exists():
            source.status = Source.Status.RUNNING
            source.finished_at = None
        else:
            source.finished_at = source.finished_at or timezone.now()
            if not counts["total"]:
                # Nothing to count: a failed listing keeps its status and its message.
                if source.status != Source.Status.FAILED:
                    source.status, source.error = Source.Status.READY, ""
            else:
                source.status = (
                    Source.Status.FAILED
                    if counts["failed"] == counts["total"]
                    else Source.Status.PARTIAL
                    if counts["failed"]
                    else Source.Status.READY
                )
                first_error = source.documents.filter(status=Document.Status.FAILED).first()
                source.error = (
                    f"{counts['failed']} of {counts['total']} document(s) failed; first: "
                    f"{first_error.title or first_error.ref}: {first_error.error}"
                    if first_error
                    else ""
                )
        source.save()
        if not was_finished and source.finished_at and source.status != Source.Status.CANCELLED:
            announce_sync(source)
    return source


def announce_sync(source: Source) -> None:
    """Tell the tenant's webhooks that a sync ended (`source.synced` or `source.failed`)."""
    from chatbot import webhooks
    from chatbot.models import Webhook

    failed = source.status == Source.Status.FAILED
    webhooks.emit(
        Webhook.Event.SOURCE_FAILED if failed else Webhook.Event.SOURCE_SYNCED,
        {
            "source_id": source.pk,
            "knowledge_base_id": source.knowledge_base_id,
            "kind": source.kind,
            "title": source.title,
            "status": source.status,
            "documents": source.documents_total,
            "failed": source.documents_failed,
            "chunks": source.chunks,
            "error": source.error[:1000],
        },
    )


def check_document_quota(adding: int) -> int:
    """How many documents may still be added (the tenant's quota; a large number when
    unlimited); ValidationError when not even `adding` fit."""
    from chatbot import limits

    try:
        limits.check_document_quota(connection.tenant, adding)
    except limits.QuotaExceeded as exc:
        raise ValidationError({"quota": exc.message}) from None
    return limits.documents_left(connection.tenant)


# --- Index ------------------------------------------------------------------------------
def rebuild_index(kb: KnowledgeBase) -> int:
    """Drop the knowledge base's collection and refill it from the chunk rows (re-embedding
    only rows whose stored embedding is missing). Returns the number of vectors."""
    collection = kb.collection_name
    index.drop(collection)
    total = 0
    chunks = Chunk.objects.filter(document__source__knowledge_base=kb).select_related("document")
    batch: list[Chunk] = []
    for chunk in chunks.iterator(chunk_size=1000):
        batch.append(chunk)
        if len(batch) == 1000:
            total += _reindex(kb, collection, batch)
            batch = []
    if batch:
        total += _reindex(kb, collection, batch)
    return total


def _reindex(kb: KnowledgeBase, collection: str, chunks: list[Chunk]) -> int:
    missing = [chunk for chunk in chunks if not chunk.embedding]
    if missing:
        embedder = pipeline.embedder_for(kb)
        vectors = embedder.embed_documents([embed_text(c.context, c.text) for c in missing])
        for chunk, vector in zip(missing, vectors, strict=True):
            chunk.embedding = np.asarray(vector, dtype=np.float32).tobytes()
        Chunk.objects.bulk_update(missing, ["embedding"])
    index.upsert(
        collection,
        [chunk.id for chunk in chunks],
        [np.frombuffer(bytes(chunk.embedding), dtype=np.float32).tolist() for chunk in chunks],
        [{"document": chunk.document_id, "source": chunk.document.source_id} for chunk in chunks],
    )
    return len(chunks)


@dataclass
class IndexReport:
    knowledge_base: KnowledgeBase
    rows: int
    vectors: int
    rows_without_vectors: list[str]
    vectors_without_rows: list[str]

    @property
    def consistent(self) -> bool:
        return not (self.rows_without_vectors or self.vectors_without_rows)


def check_index(kb: KnowledgeBase) -> IndexReport:
    rows = set(
        Chunk.objects.filter(document__source__knowledge_base=kb).values_list("id", flat=True)
    )
    vectors = set(index.all_ids(kb.collection_name))
    return IndexReport(
        knowledge_base=kb,
        rows=len(rows),
        vectors=len(vectors),
        rows_without_vectors=sorted(rows - vectors),
        vectors_without_rows=sorted(vectors - rows),
    )


# --- Search -----------------------------------------------------------------------------
def search(kb: KnowledgeBase, query: str, top_k: int = 5) -> list[dict[str, Any]]:
    """Hybrid search in one knowledge base, no threshold (knowledge.retrieval: the one search
    path, shared with the bots)."""
    query = query.strip()
    if not query:
        raise ValidationError({"query": "The query is empty."})
    top_k = max(1, min(int(top_k), 50))
    return [result.as_dict() for result in retrieval.retrieve([kb], query, top_k=top_k)]
