"""Celery tasks of the ingestion pipeline. They take ids, are idempotent, and retry
transient failures with exponential backoff and jitter; bad input fails its document only."""

from __future__ import annotations

import logging
import random

from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError, connection
from django.utils import timezone

from chatbot.celery import app
from knowledge import pipeline, services
from knowledge.models import Document, Source

log = logging.getLogger(__name__)
MAX_RETRIES = 5


def backoff(retries: int) -> float:
    return min(300.0, 2.0**retries) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter


def transient(exc: Exception) -> bool:
    import httpx

    try:
        from chromadb.errors import ChromaError
    except ImportError:  # pragma: no cover
        ChromaError = ()  # type: ignore[assignment,misc]
    return isinstance(exc, (OperationalError, httpx.TransportError, ConnectionError, ChromaError))


@app.task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def ingest_source(self, source_id: int) -> None:  # type: ignore[no-untyped-def]
    source = Source.objects.select_related("knowledge_base").filter(pk=source_id).first()
    if source is None:
        return  # deleted meanwhile
    Source.objects.filter(pk=source_id).update(
        status=Source.Status.RUNNING, started_at=timezone.now(), finished_at=None, error=""
    )
    try:
        if source.is_web:
            from knowledge import web_sources

            document_ids = web_sources.sync(source)
            Source.objects.filter(pk=source_id).update(last_synced_at=timezone.now())
        else:
            document_ids = pipeline.sync_documents(source)
    except Exception as exc:
        if transient(exc) and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        Source.objects.filter(pk=source_id).update(
            status=Source.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        services.announce_sync(Source.objects.get(pk=source_id))
        raise
    services.refresh_source(source_id)
    schema = connection.schema_name
    for document_id in document_ids:
        process_document.apply_async(args=[document_id], headers={"_schema_name": schema})
    if not document_ids:
        services.refresh_source(source_id)


@app.task(bind=True, acks_late=True, max_retries=MAX_RETRIES, soft_time_limit=900, time_limit=960)
def process_document(self, document_id: int) -> None:  # type: ignore[no-untyped-def]
    from knowledge.parsing import ParseError

    doc = Document.objects.select_related("source__knowledge_base").filter(pk=document_id).first()
    if doc is None:
        return
    if doc.source.cancel_requested:
        services.refresh_source(doc.source_id)
        return
    try:
        pipeline.process(doc)
    except (ParseError, pipeline.NothingFetched) as exc:
        pipeline.mark_failed(doc, str(exc))
    except SoftTimeLimitExceeded:
        pipeline.mark_failed(doc, "Processing this document took too long (over 15 minutes).")
    except Exception as exc:
        if transient(exc) and self.request.retries < MAX_RETRIES:
            log.warning("document %s: transient error, retrying: %s", document_id, exc)
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        log.exception("document %s failed", document_id)
        pipeline.mark_failed(doc, f"Internal error while processing: {type(exc).__name__}: {exc}")
    services.refresh_source(doc.source_id)


@app.task
def sync_due_sources() -> int:
    """Celery beat, in the public schema: queue the web sources of every tenant whose
    schedule (daily, weekly) says they are due. Returns how many were queued."""
    from django_tenants.utils import get_public_schema_name, schema_context

    from tenants.models import Tenant

    queued = 0
    tenants = Tenant.objects.exclude(schema_name=get_public_schema_name()).filter(is_active=True)
    for schema in tenants.values_list("schema_name", flat=True):
        with schema_context(schema):
            for source in services.due_sources():
                services.sync_source(source)
                queued += 1
    return queued
