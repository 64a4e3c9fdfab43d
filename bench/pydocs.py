#!/usr/bin/env python
"""The Python docs as a knowledge base, for the retrieval evaluation.

    .venv/bin/python bench/pydocs.py ingest [--chunk-tokens 200] [--overlap 30]
    .venv/bin/python bench/pydocs.py show
    .venv/bin/python bench/pydocs.py identifiers [--n 60] > /tmp/identifiers_qa.jsonl
    .venv/bin/python manage.py eval_retrieval --schema pydocs --bot <id> \
        --qa ../shared/eval/python_docs_qa.jsonl

`ingest` serves Debian's Python docs (apt-get install python3.11-doc) on loopback with
../shared/bench/serve_site.py, and ingests them through the sitemap with real Celery
workers into the DEV database: tenant `pydocs`, one knowledge base per chunk size
("Python docs (200 tokens)"), one bot linked to it. It skips a knowledge base that is
already ready, so it is safe to run again. Documents keep the served URL (a random
loopback port): the evaluation compares URL paths only. `show` prints the bots' ids;
`identifiers` writes a second question set of exact API names (see identifier_questions).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")
QUEUE = "parley-bench"
os.environ["PARLEY_CELERY_QUEUE"] = QUEUE  # keep a running platform's workers out of it
os.environ["PARLEY_FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
os.environ.setdefault("PARLEY_FETCH_HOST_DELAY_MS", "0")
os.environ.setdefault("PARLEY_FETCH_HOST_CONCURRENCY", "4")

import django  # noqa: E402

django.setup()

from django_tenants.utils import schema_context  # noqa: E402

from bench.crawl import DOCS, SERVE_SITE, free_port, wait_until_finished  # noqa: E402
from bench.ingest_files import start_workers, wait_for_worker, warm_up  # noqa: E402
from chatbot.models import Bot  # noqa: E402
from knowledge import services  # noqa: E402
from knowledge.models import KnowledgeBase, Source  # noqa: E402
from knowledge.retrieval import DEFAULT_THRESHOLD  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

SCHEMA = "pydocs"


def kb_name(chunk_tokens: int) -> str:
    return f"Python docs ({chunk_tokens} tokens)"


def _source_summary(source: Source) -> dict[str, object]:
    return {
        "status": source.status,
        "documents": source.documents_total,
        "failed": source.documents_failed,
        "chunks": source.chunks,
    }


def summary() -> list[dict[str, object]]:
    with schema_context(SCHEMA):
        return [
            {
                "bot": bot.public_id,
                "name": bot.name,
                "knowledge_bases": [
                    {
                        "id": kb.pk,
                        "name": kb.name,
                        "chunk_tokens": kb.chunk_tokens,
                        "sources": [_source_summary(s) for s in kb.sources.all()],
                    }
                    for kb in bot.knowledge_bases.all()
                ],
            }
            for bot in Bot.objects.order_by("created_at")
        ]


def identifier_questions(n: int, seed: int = 5) -> list[dict[str, object]]:
    """Exact-name lookups ("shutil.copytree"), each answered by the page documenting it,
    drawn from the docs' Sphinx inventory: the kind of query full text exists for."""
    raw = (DOCS / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    rows = [line.split(" ", 4) for line in body.splitlines()]
    names = sorted(
        (name, uri.split("#", 1)[0])
        for name, role, _, uri, *_ in rows
        if role in {"py:function", "py:method", "py:class"}
        and uri.startswith("library/")
        and "." in name
        and not name.startswith("_")
    )
    picked = random.Random(seed).sample(names, n)  # a sample, not a secret
    return [{"id": f"i{k:02d}", "q": name, "pages": [page]} for k, (name, page) in
            enumerate(picked, start=1)]  # fmt: skip


def ingest(chunk_tokens: int, overlap: int, concurrency: int) -> None:
    if not DOCS.exists():
        sys.exit("Install Debian's python3.11-doc first: apt-get install python3.11-doc")
    ensure_public_tenant()
    create_tenant_site(SCHEMA, name="Python docs")
    with schema_context(SCHEMA):
        kb, _ = KnowledgeBase.objects.get_or_create(
            name=kb_name(chunk_tokens),
            defaults={"chunk_tokens": chunk_tokens, "chunk_overlap": overlap},
        )
        bot, _ = Bot.objects.get_or_create(
            name=f"Python docs ({chunk_tokens})",
            defaults={"relevance_threshold": DEFAULT_THRESHOLD},
        )
        bot.knowledge_bases.add(kb)
        if kb.sources.filter(status=Source.Status.READY).exists():
            print(json.dumps(summary(), indent=2))
            return
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, str(SERVE_SITE), str(DOCS), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = start_workers(concurrency)
    try:
        wait_for_worker()
        with schema_context(SCHEMA):
            for stale in kb.sources.all():  # an interrupted earlier run starts over
                services.delete_source(stale)
            warm_up(kb)
            source = services.add_web_source(
                kb, "sitemap", {"url": f"http://127.0.0.1:{port}/sitemap.xml", "max_pages": 2000}
            )
            seconds = wait_until_finished(source, timeout=4 * 3600)
            print(f"ingested in {seconds:.0f} s", file=sys.stderr)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        site.terminate()
    print(json.dumps(summary(), indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("ingest")
    run.add_argument("--chunk-tokens", type=int, default=200)
    run.add_argument("--overlap", type=int, default=30)
    run.add_argument("--concurrency", type=int, default=2)
    commands.add_parser("show")
    names = commands.add_parser("identifiers")
    names.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    if args.command == "ingest":
        ingest(args.chunk_tokens, args.overlap, args.concurrency)
    elif args.command == "identifiers":
        for row in identifier_questions(args.n):
            print(json.dumps(row))
    else:
        print(json.dumps(summary(), indent=2))


if __name__ == "__main__":
    main()
