#!/usr/bin/env python
"""Website ingestion through the real stack, against a naive baseline, then an unchanged
re-sync.

    .venv/bin/python bench/crawl.py [--limit N] [--concurrency C]

Serves Debian's Python docs (apt-get install python3.11-doc) on loopback with
../shared/bench/serve_site.py (sitemap, robots.txt, ETag/Last-Modified), ingests them
through the sitemap with real Celery workers, Chroma and PostgreSQL, re-syncs unchanged,
and embeds the same pages with a naive baseline in this process: trafilatura, fixed
1,000-character chunks, sentence-transformers fp32 batch 32. Prints JSON. Needs the
services up (`make services-up`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")
QUEUE = "parley-bench"
os.environ["PARLEY_CELERY_QUEUE"] = QUEUE
os.environ["PARLEY_FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
os.environ.setdefault("PARLEY_FETCH_HOST_DELAY_MS", "0")
os.environ.setdefault("PARLEY_FETCH_HOST_CONCURRENCY", "4")

import django  # noqa: E402

django.setup()

from django_tenants.utils import schema_context  # noqa: E402

from bench.ingest_files import naive_model, start_workers, wait_for_worker  # noqa: E402
from knowledge import services  # noqa: E402
from knowledge.models import Document, KnowledgeBase, Source  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html")
SERVE_SITE = BASE_DIR.parent / "shared" / "bench" / "serve_site.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_finished(source: Source, timeout: float = 3600) -> float:
    started = time.perf_counter()
    while True:
        source.refresh_from_db()
        if source.status not in (Source.Status.PENDING, Source.Status.RUNNING):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError("ingestion did not finish")
        time.sleep(0.5)


def naive_baseline(urls: list[str]) -> tuple[float, int]:
    """trafilatura + fixed 1,000-character chunks + sentence-transformers fp32, batch 32."""
    import trafilatura

    model = naive_model()
    started = time.perf_counter()
    chunks: list[str] = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as response:
            text = trafilatura.extract(response.read().decode("utf-8", "replace")) or ""
        chunks += [text[i : i + 1000] for i in range(0, len(text), 1000)]
    model.encode(chunks, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - started, len(chunks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if not DOCS.exists():
        sys.exit("Install Debian's python3.11-doc first: apt-get install python3.11-doc")
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, str(SERVE_SITE), str(DOCS), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ensure_public_tenant()
    create_tenant_site("bench", name="Benchmarks")
    worker = start_workers(args.concurrency)
    try:
        wait_for_worker()
        time.sleep(1)
        with schema_context("bench"):
            kb = KnowledgeBase.objects.create(name=f"crawl {time.strftime('%H:%M:%S')}")
            warm = services.add_text_source(kb, "warm-up", "Load the embedding model first.")
            wait_until_finished(warm)
            services.delete_source(warm)
            source = services.add_web_source(
                kb, "sitemap", {"url": f"http://127.0.0.1:{port}/sitemap.xml",
                                "max_pages": args.limit},
            )  # fmt: skip
            seconds = wait_until_finished(source)
            pages = Document.objects.filter(source=source, status="ready").count()
            first = {
                "status": source.status, "documents": source.documents_total,
                "failed": source.documents_failed, "chunks": source.chunks,
            }  # fmt: skip
            urls = list(Document.objects.filter(source=source).values_list("url", flat=True))
            services.sync_source(source)
            resync_seconds = wait_until_finished(source)
            re_embedded = source.documents_indexed
            unchanged = source.documents_unchanged
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    naive_seconds, naive_chunks = naive_baseline(urls)
    site.terminate()
    print(json.dumps({
        "pages": pages,
        "first_sync": first,
        "seconds": round(seconds, 1),
        "pages_per_minute": round(60 * pages / seconds, 1),
        "naive_baseline": {
            "method": "trafilatura + fixed 1,000-char chunks + sentence-transformers fp32 b32",
            "seconds": round(naive_seconds, 1),
            "chunks": naive_chunks,
            "pages_per_minute": round(60 * len(urls) / naive_seconds, 1),
        },
        "ratio_pipeline_to_naive": round(naive_seconds / seconds, 3),
        "resync_seconds": round(resync_seconds, 1),
        "resync_unchanged": unchanged,
        "pages_re_embedded_on_unchanged_resync": re_embedded,
        "worker_concurrency": args.concurrency,
    }, indent=2))  # fmt: skip
    with schema_context("bench"):
        services.delete_knowledge_base(kb)


if __name__ == "__main__":
    main()
