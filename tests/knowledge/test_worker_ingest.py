"""Ingestion through real worker processes: a worker killed in the middle of a batch loses
nothing, and running the source again ends with exactly the chunks of a clean run."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django_tenants.utils import schema_context

from chatbot.celery import app
from knowledge import index, services
from knowledge.models import Chunk, Document, KnowledgeBase, Source
from tests.conftest import start_worker, stop_worker, wait_for_worker

PAIRS = [
    {"question": f"What is rule number {n}?", "answer": f"Rule {n}: keep receipt {n * 7} safe."}
    for n in range(1, 41)
]


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with schema_context("tenant_a"):
            if predicate():
                return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def status_of(source_id: int) -> str:
    return Source.objects.get(pk=source_id).status


@pytest.mark.worker
def test_a_killed_worker_loses_nothing_and_a_rerun_completes(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        worker = start_worker()
        made: list[KnowledgeBase] = []
        try:
            wait_for_worker(app)
            with schema_context("tenant_a"):
                clean_kb = KnowledgeBase.objects.create(name="clean run")
                killed_kb = KnowledgeBase.objects.create(name="killed run")
                made += [clean_kb, killed_kb]
                clean = services.add_qa_source(clean_kb, PAIRS)
                wait_for(lambda: status_of(clean.pk) == Source.Status.READY, 60, "clean run")

                killed = services.add_qa_source(killed_kb, PAIRS)
                wait_for(
                    lambda: Document.objects.filter(source=killed, status="ready").count() >= 3,
                    120,
                    "the first documents",
                )
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, mid-batch
            worker.wait(timeout=10)
            with schema_context("tenant_a"):
                done_when_killed = Document.objects.filter(source=killed, status="ready").count()
                assert done_when_killed < len(PAIRS), "the batch finished before the kill"

            worker = start_worker()
            wait_for_worker(app)
            with schema_context("tenant_a"):
                services.reingest(killed)
                wait_for(lambda: status_of(killed.pk) == Source.Status.READY, 180, "the rerun")
                time.sleep(1)  # let any redelivered duplicate task finish too
                clean_ids = set(
                    Chunk.objects.filter(document__source=clean).values_list("id", flat=True)
                )
                rows = list(
                    Chunk.objects.filter(document__source=killed).values_list("id", flat=True)
                )
                assert len(rows) == len(set(rows)) == len(clean_ids) == len(PAIRS)
                vectors = list(index.all_ids(killed_kb.collection_name))
                assert sorted(vectors) == sorted(rows)
                killed.refresh_from_db()
                assert (killed.documents_done, killed.documents_failed, killed.chunks) == (
                    len(PAIRS),
                    0,
                    len(PAIRS),
                )
        finally:
            stop_worker(worker)
            with schema_context("tenant_a"):
                for kb in made:
                    services.delete_knowledge_base(kb)
