#!/usr/bin/env python
"""Search latency at 10k and 100k chunks in one knowledge base, server-side and end-to-end.

    .venv/bin/python bench/retrieval.py [--sizes 10000 100000] [--runs 200] [--no-http]

Seeds a `benchret` tenant of the DEV database (once: a knowledge base that already holds
its chunks is reused) with synthetic chunks: text sampled word by word from the Python
docs' own word frequencies (a Zipf-shaped unigram model, so the full-text side matches and
ranks as many rows as real text would), random unit vectors (384 dimensions, as MiniLM)
stored on the rows and upserted to Chroma in batches. Then, per size, times the real
questions of ../shared/eval/python_docs_qa.jsonl plus a few synthetic keyword queries:

* server-side: `knowledge.retrieval.retrieve` (hybrid, top 5) in this process, with its
  stages (query embedding, Chroma k-NN, full text, rows) timed separately;
* baselines in the same run: vector-only retrieval (the embedding, k-NN and rows: the old
  search path) and a naive full-text search (OR of the query's words, `ts_rank_cd` over
  every matching row, no row cap and no pruning of common words);
* end-to-end: `POST /api/v1/bots/{public_id}/search/` through a real daphne process with an
  API key (skipped, with the status code, while the route does not exist).

Prints JSON. Needs the services up (`manage.py services status`).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from chatbot.models import Bot  # noqa: E402
from chatbot.services import create_api_key  # noqa: E402
from knowledge import index, retrieval  # noqa: E402
from knowledge.models import Chunk, Document, KnowledgeBase, Source  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

SCHEMA = "benchret"
DOCS = Path("/usr/share/doc/python3.11/html")
QA = BASE_DIR.parent / "shared" / "eval" / "python_docs_qa.jsonl"
CHUNKS_PER_DOCUMENT = 50
WORDS_PER_CHUNK = (90, 170)  # ~200 MiniLM tokens, the default chunk size
DIMENSIONS = 384
SEED_BATCH = 5000


# --- Synthetic corpus -------------------------------------------------------------------
def vocabulary(limit: int = 40_000) -> tuple[list[str], np.ndarray]:
    """Words and their probabilities, counted in the Python docs (or a Zipf law over made-up
    words when the docs are not installed)."""
    counts: Counter[str] = Counter()
    if DOCS.exists():
        for page in DOCS.rglob("*.html"):
            if "_static" in page.parts or "_sources" in page.parts:
                continue
            text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(errors="replace")))
            counts.update(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9]|[A-Za-z]", text))
    if not counts:
        counts.update({f"w{n}": int(1e6 / n) + 1 for n in range(1, limit)})
    words, freqs = zip(*counts.most_common(limit), strict=True)
    p = np.asarray(freqs, dtype=np.float64)
    return list(words), p / p.sum()


def synthetic_text(rng: np.random.Generator, words: list[str], p: np.ndarray) -> str:
    n = int(rng.integers(*WORDS_PER_CHUNK))
    picks = rng.choice(len(words), size=n, p=p)
    sentences, start = [], 0
    while start < n:  # sentences of 8 to 24 words
        end = min(n, start + int(rng.integers(8, 25)))
        sentence = " ".join(words[i] for i in picks[start:end])
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        start = end
    return " ".join(sentences)


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- Seeding ----------------------------------------------------------------------------
def seed(size: int, words: list[str], p: np.ndarray) -> KnowledgeBase:
    """A knowledge base of `size` chunks (reused when already complete)."""
    kb, _ = KnowledgeBase.objects.get_or_create(name=f"bench {size}")
    have = Chunk.objects.filter(document__source__knowledge_base=kb).count()
    if have == size and index.collection(kb.collection_name).count() == size:
        return kb
    index.drop(kb.collection_name)
    Source.objects.filter(knowledge_base=kb).delete()
    source = Source.objects.create(
        knowledge_base=kb, kind=Source.Kind.TEXT, title="synthetic", status=Source.Status.READY
    )
    rng = np.random.default_rng(size)
    documents = Document.objects.bulk_create(
        Document(
            source=source, ref=f"doc-{n}", title=" ".join(rng.choice(words[50:3000], size=4)),
            url=f"https://docs.example.com/pages/{n}.html", status=Document.Status.READY,
            chunk_count=CHUNKS_PER_DOCUMENT,
        )
        for n in range(size // CHUNKS_PER_DOCUMENT)
    )  # fmt: skip
    started = time.perf_counter()
    for start in range(0, size, SEED_BATCH):
        _seed_batch(kb, documents, range(start, min(size, start + SEED_BATCH)), rng, words, p)
        print(f"seeded {start + SEED_BATCH} of {size} ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Chunk._meta.db_table}")  # lexeme statistics for the search
    Source.objects.filter(pk=source.pk).update(chunks=size, documents_total=len(documents))
    return kb


def _seed_batch(
    kb: KnowledgeBase,
    documents: list[Document],
    numbers: range,
    rng: np.random.Generator,
    words: list[str],
    p: np.ndarray,
) -> None:
    vectors = unit_vectors(rng, len(numbers))
    rows = []
    for offset, number in enumerate(numbers):
        document = documents[number // CHUNKS_PER_DOCUMENT]
        heading = " ".join(rng.choice(words[100:5000], size=3))
        rows.append((
            f"{document.pk}-synthetic-{number}", document.pk, kb.pk, number % CHUNKS_PER_DOCUMENT,
            synthetic_text(rng, words, p), f"{document.title} > {heading}",
            json.dumps([heading]), 200, vectors[offset].tobytes(),
        ))  # fmt: skip
    columns = (
        "id, document_id, knowledge_base_id, ordinal, text, context, heading_path, "
        "token_count, embedding"
    )
    copy_sql = f"COPY {Chunk._meta.db_table} ({columns}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(row)
    index.upsert(
        kb.collection_name,
        [row[0] for row in rows],
        vectors.tolist(),
        [{"document": row[1], "source": documents[0].source_id} for row in rows],
    )


# --- Timing -----------------------------------------------------------------------------
def queries(words: list[str]) -> list[str]:
    real = [json.loads(line)["q"] for line in QA.read_text().splitlines() if line.strip()]
    # A few keyword queries of mid-frequency words, which match thousands of rows at 100k.
    rng = np.random.default_rng(7)
    synthetic = [" ".join(rng.choice(words[200:2000], size=3)) for _ in range(8)]
    return real + synthetic


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "n": len(ordered),
    }


def timed(call: Callable[[str], Any], texts: list[str], runs: int) -> list[float]:
    for text in texts[:5]:  # warm-up: caches, connections, the model
        call(text)
    samples = []
    for n in range(runs):
        started = time.perf_counter()
        call(texts[n % len(texts)])
        samples.append(time.perf_counter() - started)
    return samples


# query_vectors and _vector_side run on a pool thread, alongside query_terms and
# _keyword_search: the stages overlap and do not add up.
STAGES = ("query_terms", "query_vectors", "_vector_side", "_keyword_search", "_hydrate")


def stage_times(kb: KnowledgeBase, texts: list[str], runs: int) -> dict[str, float]:
    """Median milliseconds of each stage of `retrieve`, by wrapping its functions."""
    spent: dict[str, list[float]] = {name: [] for name in STAGES}
    originals = {name: getattr(retrieval, name) for name in STAGES}

    def wrap(name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - started)

        return run

    for name in STAGES:
        setattr(retrieval, name, wrap(name))
    try:
        timed(lambda q: retrieval.retrieve([kb], q, top_k=5), texts, runs)
    finally:
        for name, original in originals.items():
            setattr(retrieval, name, original)
    return {name.strip("_"): round(1000 * statistics.median(v), 2) for name, v in spent.items()}


def naive_keyword(kb: KnowledgeBase, query: str) -> list[tuple[str, float]]:
    """Every matching row ranked: the OR of the query's words, no cap, no pruning."""
    terms = retrieval.query_terms(query)
    if not terms.lexemes:
        return []
    sql = f"""
        SELECT c.id, ts_rank_cd(c.search_vector, %(q)s::tsquery) AS rank
        FROM {Chunk._meta.db_table} c
        WHERE c.knowledge_base_id = %(kb)s AND c.search_vector @@ %(q)s::tsquery
        ORDER BY rank DESC LIMIT 5
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"q": terms.rank_query, "kb": kb.pk})
        return cursor.fetchall()


# --- End to end -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "chatbot.asgi:application"],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise TimeoutError("daphne did not start")


def http_times(port: int, host: str, bot: Bot, key: str, texts: list[str], runs: int) -> dict:
    import httpx

    url = f"http://127.0.0.1:{port}/api/v1/bots/{bot.public_id}/search/"
    headers = {"Host": host, "Authorization": f"Bearer {key}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        probe = client.post(url, json={"query": texts[0], "top_k": 5})
        if probe.status_code != 200 or "results" not in probe.json():
            return {"available": False, "status": probe.status_code, "body": probe.text[:200]}

        def call(text: str) -> None:
            client.post(url, json={"query": text, "top_k": 5}).raise_for_status()

        return {"available": True, **percentiles(timed(call, texts, runs))}


# --- Main -------------------------------------------------------------------------------
def bench_size(
    size: int, words: list[str], p: np.ndarray, texts: list[str], runs: int, http: dict | None
) -> dict[str, Any]:
    with schema_context(SCHEMA):
        started = time.perf_counter()
        kb = seed(size, words, p)
        seeded = round(time.perf_counter() - started, 1)
        bot, _ = Bot.objects.get_or_create(name=f"bench {size}")
        bot.knowledge_bases.set([kb])
        hybrid = timed(lambda q: retrieval.retrieve([kb], q, top_k=5), texts, runs)
        vector = timed(lambda q: retrieval.retrieve([kb], q, top_k=5, mode="vector"), texts, runs)
        naive = timed(lambda q: naive_keyword(kb, q), texts, runs)
        stages = stage_times(kb, texts, min(runs, 100))
        end_to_end = None
        if http is not None:
            key_row, key = create_api_key("bench/retrieval.py")
            try:
                end_to_end = http_times(http["port"], http["host"], bot, key, texts, runs)
            finally:
                key_row.revoke()
    hybrid_p, vector_p, naive_p = percentiles(hybrid), percentiles(vector), percentiles(naive)
    return {
        "chunks": size,
        "seed_seconds": seeded,
        "server_side": {"hybrid": hybrid_p, "stages_median_ms": stages},
        "baselines": {
            "vector_only": vector_p,
            "naive_full_text": {
                **naive_p,
                "method": "OR of the query's words, ts_rank_cd over every match, no cap",
            },
        },
        "ratios_p95": {
            "hybrid_to_vector_only": round(hybrid_p["p95_ms"] / vector_p["p95_ms"], 2),
            "hybrid_to_naive_full_text": round(hybrid_p["p95_ms"] / naive_p["p95_ms"], 2),
        },
        "end_to_end_http": end_to_end or {"skipped": True},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--no-http", action="store_true", help="server-side only")
    args = parser.parse_args()
    ensure_public_tenant()
    with contextlib.redirect_stdout(sys.stderr):  # migrations talk; stdout is for the JSON
        site = create_tenant_site(SCHEMA, name="Retrieval benchmark")
    # The API's per-key rate limit (0: none) would answer 429 to a benchmark's burst.
    Tenant.objects.filter(pk=site.tenant.pk).update(api_requests_per_minute=0)
    words, p = vocabulary()
    texts = queries(words)
    http = None
    server = None
    load_before = os.getloadavg()
    if not args.no_http:
        port = free_port()
        server = start_daphne(port)
        http = {"port": port, "host": site.domain.domain}
    try:
        results = [bench_size(size, words, p, texts, args.runs, http) for size in args.sizes]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({
        "queries": len(texts),
        "top_k": 5,
        "cpu_count": os.cpu_count(),
        # Other work on the machine moves the tails: the 1-minute load before and after.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "target": "p95 <= 50 ms server-side at 100k chunks",
        "sizes": results,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
