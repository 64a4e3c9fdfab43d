"""Ingestion, one document at a time: load → (skip if unchanged) → parse → chunk → embed →
upsert vectors → write chunk rows. Idempotent: chunk ids derive from the document and its
content hash, so running a document twice upserts the same vectors and rows."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from knowledge import chunking, index
from knowledge.models import Chunk, Document, KnowledgeBase, Source

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A document's raw input, hashed before any expensive work."""

    content_hash: str
    size: int
    mime_type: str
    parse: Any  # () -> (title, drafts)
    metadata: dict[str, Any] = field(default_factory=dict)


def content_hash(kb: KnowledgeBase, *parts: bytes) -> str:
    digest = hashlib.sha256()
    # Chunking and embedding settings (down to the local model's backend, whose vectors
    # differ slightly) are part of the hash: changing them re-indexes.
    backend = getattr(embedder_for(kb), "backend", "")
    digest.update(f"{kb.embedder}|{backend}|{kb.chunk_tokens}|{kb.chunk_overlap}|v1".encode())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def enumerate_documents(source: Source) -> list[dict[str, Any]]:
    """The documents a source is made of, as (ref, title, url, metadata) rows."""
    if source.kind == Source.Kind.FILE:
        name = source.file.name
        return [{"ref": name, "title": name, "url": name, "metadata": {}}]
    if source.kind == Source.Kind.TEXT:
        return [{"ref": "text", "title": source.title, "url": "", "metadata": {}}]
    if source.kind == Source.Kind.QA:
        return [
            {
                "ref": f"pair-{number}",
                "title": pair["question"][:500],
                "url": "",
                "metadata": {"question": pair["question"], "answer": pair["answer"]},
            }
            for number, pair in enumerate(source.config.get("pairs", []), start=1)
        ]
    raise ValueError(f"Source kind {source.kind!r} is not handled by this pipeline yet.")


def sync_documents(source: Source) -> list[int]:
    """Create the source's document rows (idempotent), drop the ones that no longer belong to
    it, and return the ids still to process."""
    wanted = enumerate_documents(source)
    refs = [row["ref"] for row in wanted]
    existing = {doc.ref: doc for doc in source.documents.all()}
    for row in wanted:
        doc = existing.get(row["ref"])
        if doc is None:
            Document.objects.create(source=source, **row)
        elif doc.metadata != row["metadata"] or doc.title != row["title"]:
            doc.metadata, doc.title = row["metadata"], row["title"] or doc.title
            doc.save(update_fields=["metadata", "title", "updated_at"])
    stale = [doc for ref, doc in existing.items() if ref not in refs]
    for doc in stale:
        delete_document(doc)
    return list(source.documents.values_list("id", flat=True))


class NothingFetched(Exception):
    """A web document with no fetched body and no index yet: it needs a sync."""


def load_web(doc: Document, kb: KnowledgeBase) -> Loaded | None:
    """A fetched page or linked document. None when there is no new body (already indexed)."""
    from knowledge.parsing import parse_document
    from knowledge.web.content import DOCUMENT_TYPES
    from knowledge.web.extract import extract_html

    body = bytes(doc.raw_body) if doc.raw_body is not None else b""
    if not body:
        if doc.status == Document.Status.READY:
            return None
        raise NothingFetched("Nothing was fetched for this page; sync the source again.")
    if doc.raw_content_type in DOCUMENT_TYPES:
        name = doc.metadata.get("filename") or "document"

        def parse():  # type: ignore[no-untyped-def]
            parsed = parse_document(body, name, max_bytes=settings.PARLEY_MAX_UPLOAD_BYTES)
            return parsed.title, parsed.mime_type, parsed.elements

        return Loaded(content_hash(kb, body), len(body), doc.raw_content_type, parse)
    page = extract_html(body, doc.url)
    if page.empty_reason:
        reasons = {
            "javascript_only": "The page shows nothing without JavaScript.",
            "login_wall": "The page is behind a login.",
            "no_content": "The page has no main content.",
        }
        return Loaded(
            content_hash(kb, b"empty", page.empty_reason.encode()), len(body), "text/html",
            lambda: (page.title, "text/html", []),
            metadata={"empty_reason": reasons.get(page.empty_reason, page.empty_reason)},
        )  # fmt: skip
    # The extracted text is hashed, not the HTML: a changed ad or date stamp re-embeds nothing.
    digest = content_hash(kb, page.title.encode(), page.text.encode())
    images = [{"url": i.url, "alt": i.alt, "caption": i.caption} for i in page.images]
    return Loaded(
        digest, len(body), "text/html", lambda: (page.title, "text/html", page.elements),
        metadata={"extraction": page.method, "images": images},
    )  # fmt: skip


def load(doc: Document) -> Loaded | None:
    source = doc.source
    kb = source.knowledge_base
    if source.is_web:
        return load_web(doc, kb)
    if source.kind == Source.Kind.FILE:
        stored = source.file
        data = bytes(stored.data)

        def parse():  # type: ignore[no-untyped-def]
            from knowledge.parsing import parse_document

            parsed = parse_document(data, stored.name, max_bytes=settings.PARLEY_MAX_UPLOAD_BYTES)
            return parsed.title, parsed.mime_type, parsed.elements

        return Loaded(content_hash(kb, data), len(data), "", parse)
    if source.kind == Source.Kind.TEXT:
        text = source.config.get("text", "")

        def parse():  # type: ignore[no-untyped-def]
            return source.title, "text/plain", chunking.elements_from_text(text)

        return Loaded(content_hash(kb, text.encode()), len(text.encode()), "text/plain", parse)
    if source.kind == Source.Kind.QA:
        question, answer = doc.metadata["question"], doc.metadata["answer"]
        raw = json.dumps([question, answer]).encode()
        return Loaded(content_hash(kb, raw), len(raw), "text/x-qa", None)
    raise ValueError(f"Source kind {source.kind!r} is not handled by this pipeline yet.")


def chunk_drafts(doc: Document, loaded: Loaded) -> tuple[str, str, list[Any]]:
    kb = doc.source.knowledge_base
    embedder = embedder_for(kb)
    limits = {"count_tokens": embedder.count_tokens, "max_tokens": embedder.max_tokens}
    if loaded.parse is None:  # a Q&A pair
        drafts = chunking.chunk_qa_pair(
            doc.metadata["question"], doc.metadata["answer"], chunk_tokens=kb.chunk_tokens, **limits
        )
        return doc.title, loaded.mime_type, drafts
    title, mime_type, elements = loaded.parse()
    title = title or doc.title
    drafts = chunking.chunk_elements(
        elements,
        title=title,
        chunk_tokens=kb.chunk_tokens,
        overlap_tokens=kb.chunk_overlap,
        **limits,
    )
    return title, mime_type, drafts


def embedder_for(kb: KnowledgeBase):  # type: ignore[no-untyped-def]
    from knowledge.embedding import get_embedder

    return get_embedder(kb.embedder, api_key=kb.embedder_api_key or None)


def process(doc: Document) -> bool:
    """Index one document; returns False when it was already up to date.

    Raises ParseError for bad input (the caller records it); any other exception is for the
    caller to retry.
    """
    kb = doc.source.knowledge_base
    collection = kb.collection_name
    loaded = load(doc)
    if loaded is not None and doc.source.is_web and (original := duplicate_of(doc, loaded)):
        mark_duplicate(doc, original)
        return False
    if loaded is None or (
        doc.status == Document.Status.READY and doc.content_hash == loaded.content_hash
    ):
        Document.objects.filter(pk=doc.pk).update(
            outcome=Document.Outcome.UNCHANGED, raw_body=None, updated_at=timezone.now()
        )
        return False
    Document.objects.filter(pk=doc.pk).update(
        status=Document.Status.PROCESSING, updated_at=timezone.now()
    )
    title, mime_type, drafts = chunk_drafts(doc, loaded)
    ids = [f"{doc.pk}-{loaded.content_hash[:16]}-{draft.ordinal}" for draft in drafts]
    vectors = embedder_for(kb).embed_documents([draft.embed_text for draft in drafts])
    if ids:
        index.upsert(
            collection,
            ids,
            vectors,
            [{"document": doc.pk, "source": doc.source_id} for _ in ids],
        )
    with transaction.atomic():
        stale = list(doc.chunks.exclude(id__in=ids).values_list("id", flat=True))
        doc.chunks.all().delete()
        Chunk.objects.bulk_create(
            Chunk(
                id=chunk_id,
                document=doc,
                knowledge_base=kb,
                ordinal=draft.ordinal,
                text=draft.text,
                context=chunking.join_context(title, draft.heading_path),
                heading_path=draft.heading_path,
                token_count=draft.token_count,
                page=draft.page,
                embedding=np.asarray(vector, dtype=np.float32).tobytes(),
            )
            for chunk_id, draft, vector in zip(ids, drafts, vectors, strict=True)
        )
        doc.title = title[:500]
        doc.mime_type = mime_type or doc.mime_type
        doc.size = loaded.size
        doc.content_hash = loaded.content_hash
        doc.chunk_count = len(ids)
        doc.status = Document.Status.READY if ids else Document.Status.EMPTY
        doc.error = (
            ""
            if ids
            else loaded.metadata.get("empty_reason") or "No text worth indexing was found."
        )
        doc.outcome = Document.Outcome.INDEXED
        doc.raw_body = None
        doc.metadata = {**doc.metadata, **loaded.metadata}
        doc.save()
        transaction.on_commit(lambda: index.delete(collection, stale))
    return True


def duplicate_of(doc: Document, loaded: Loaded) -> Document | None:
    """Another page of the source that this one repeats: the same extracted content, or the
    page this one names as its canonical URL."""
    others = Document.objects.filter(source_id=doc.source_id).exclude(pk=doc.pk).defer("raw_body")
    canonical = doc.metadata.get("canonical_url") or ""
    if canonical and canonical not in {doc.url, doc.ref}:
        named = others.filter(models.Q(ref=canonical) | models.Q(url=canonical)).first()
        if named is not None:
            return named
    return others.filter(content_hash=loaded.content_hash, status=Document.Status.READY).first()


def mark_duplicate(doc: Document, original: Document) -> None:
    collection = doc.source.knowledge_base.collection_name
    with transaction.atomic():
        ids = list(doc.chunks.values_list("id", flat=True))
        doc.chunks.all().delete()
        Document.objects.filter(pk=doc.pk).update(
            status=Document.Status.EMPTY,
            outcome=Document.Outcome.UNCHANGED,
            error=f"Same content as {original.url or original.ref}: indexed once.",
            chunk_count=0,
            raw_body=None,
            updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: index.delete(collection, ids))


def mark_failed(doc: Document, message: str) -> None:
    Document.objects.filter(pk=doc.pk).update(
        status=Document.Status.FAILED,
        outcome=Document.Outcome.FAILED,
        error=message[:2000],
        updated_at=timezone.now(),
    )


def delete_document(doc: Document) -> None:
    collection = doc.source.knowledge_base.collection_name
    with transaction.atomic():
        ids = list(doc.chunks.values_list("id", flat=True))
        doc.delete()
        transaction.on_commit(lambda: index.delete(collection, ids))
