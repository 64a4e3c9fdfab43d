#!/usr/bin/env python
"""Ingestion throughput through the real worker, against a naive embedding baseline.

    .venv/bin/python bench/ingest_files.py [FOLDER] [--limit N] [--concurrency C]

Ingests the files of FOLDER (default: the Python docs' HTML from Debian's python3.11-doc,
or generated Markdown when absent) into a fresh knowledge base of a `bench` tenant through
real Celery worker processes, then embeds the very same chunk texts with a naive baseline
in this process (sentence-transformers fp32, batch 32, input order) and prints JSON with
both throughputs and their ratio. Needs the services up (`make services-up`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")
QUEUE = "parley-bench"
os.environ["PARLEY_CELERY_QUEUE"] = QUEUE  # keep a running platform's workers out of it

import django  # noqa: E402

django.setup()

from django_tenants.utils import schema_context  # noqa: E402

from chatbot.celery import app  # noqa: E402
from knowledge import services  # noqa: E402
from knowledge.models import Chunk, KnowledgeBase, Source  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

PYDOCS = Path("/usr/share/doc/python3.11/html/library")
SUFFIXES = {".html", ".md", ".txt", ".pdf", ".docx", ".pptx", ".xlsx", ".csv"}


def corpus(folder: Path | None, limit: int) -> list[tuple[str, bytes]]:
    if folder is None and PYDOCS.exists():
        folder = PYDOCS
    if folder is None:
        text = "\n\n".join(
            f"## Section {n}\n\n"
            + " ".join(f"Sentence {n}.{m} about topic {m % 17}." for m in range(40))
            for n in range(12)
        )
        return [(f"doc{n}.md", f"# Document {n}\n\n{text}".encode()) for n in range(limit)]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    return [(p.name, p.read_bytes()) for p in files[:limit]]


def start_workers(concurrency: int) -> subprocess.Popen:
    env = {**os.environ, "PARLEY_CELERY_QUEUE": QUEUE}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "chatbot", "worker", "--queues", QUEUE,
         "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-mingle",
         "--without-gossip"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for_worker(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5, limit=1):
            return
    raise TimeoutError("no worker")


def warm_up(kb: KnowledgeBase) -> None:
    """Load the model in every worker process before the clock starts."""
    services.add_text_source(kb, "warm-up", "Warm up the embedding model.")
    deadline = time.monotonic() + 120
    while Source.objects.filter(knowledge_base=kb).exclude(status__in=["ready", "failed"]).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("warm-up did not finish")
        time.sleep(0.2)
    for source in Source.objects.filter(knowledge_base=kb):
        services.delete_source(source)


def naive_model():  # type: ignore[no-untyped-def]
    """sentence-transformers fp32 on the packaged all-MiniLM-L6-v2, warmed up."""
    import torch
    from sentence_transformers import SentenceTransformer

    from knowledge.embedding import _model_dir

    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(str(_model_dir()), device="cpu")
    model.encode(["warm up"] * 32, batch_size=32)  # as the workers were warmed up
    return model


def naive_baseline(texts: list[str]) -> float:
    """sentence-transformers fp32, batch 32, texts in their given order: seconds."""
    model = naive_model()
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    files = corpus(args.folder, args.limit)
    ensure_public_tenant()
    create_tenant_site("bench", name="Benchmarks")
    worker = start_workers(args.concurrency)
    try:
        wait_for_worker()
        with schema_context("bench"):
            kb = KnowledgeBase.objects.create(name=f"bench {time.strftime('%H:%M:%S')}")
            warm_up(kb)
            started = time.perf_counter()
            outcomes = services.add_file_sources(kb, files)
            while Source.objects.filter(
                knowledge_base=kb, status__in=["pending", "running"]
            ).exists():
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            chunks = list(
                Chunk.objects.filter(document__source__knowledge_base=kb).values_list(
                    "context", "text"
                )
            )
            failed = Source.objects.filter(knowledge_base=kb, status="failed").count()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    texts = [f"{context}\n\n{text}" for context, text in chunks]
    naive_seconds = naive_baseline(texts)
    pipeline_rate = len(texts) / seconds
    naive_rate = len(texts) / naive_seconds
    print(json.dumps({
        "documents": len(files),
        "rejected_at_upload": sum(1 for o in outcomes if o.error),
        "failed_sources": failed,
        "chunks": len(texts),
        "mean_chunk_chars": round(sum(map(len, texts)) / max(1, len(texts))),
        "seconds": round(seconds, 2),
        "chunks_per_second": round(pipeline_rate, 2),
        "naive_baseline": {
            "method": "sentence-transformers fp32, batch 32, same chunk texts, one process",
            "seconds": round(naive_seconds, 2),
            "chunks_per_second": round(naive_rate, 2),
        },
        "ratio_pipeline_to_naive": round(pipeline_rate / naive_rate, 3),
        "worker_concurrency": args.concurrency,
        "cpu_count": os.cpu_count(),
    }, indent=2))  # fmt: skip
    with schema_context("bench"):
        services.delete_knowledge_base(kb)


if __name__ == "__main__":
    main()
