"""Retrieval quality on a question set: hit@1, hit@5 and MRR@10 per retrieval mode, and how
often the relevance threshold refuses (rightly on unanswerable questions, wrongly on
answerable ones). Used by ``manage.py eval_retrieval``; see docs/retrieval.md.

A question set is JSON lines: ``{"id", "q", "pages": ["library/json.html", ...]}``; an
empty ``pages`` means the knowledge cannot answer it. A result is a hit when its
document's URL path (or file name) ends with one of the pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from knowledge.models import KnowledgeBase
from knowledge.retrieval import MAX_PER_DOCUMENT, MODES, Result, retrieve

RANKED = 10  # results fetched per question: MRR@10


@dataclass(frozen=True)
class Question:
    id: str
    q: str
    pages: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.pages)


def load_questions(path: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(Question(str(row["id"]), str(row["q"]), tuple(row["pages"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a question row ({exc})") from None
    return questions


def url_path(url: str) -> str:
    """The path of a URL without query or fragment; a file name stays as it is."""
    return urlsplit(url).path if "://" in url else url.split("#", 1)[0].split("?", 1)[0]


def is_hit(result: Result, pages: Sequence[str]) -> bool:
    path = url_path(result.document.get("url") or "")
    return any(path == page or path.endswith("/" + page.lstrip("/")) for page in pages)


def ranks(results: Sequence[Result], pages: Sequence[str]) -> dict[str, float]:
    """hit@1 and hit@5 over the results as returned; MRR@10 over their documents (a
    document's passages after its first add nothing: hits count documents)."""
    documents: list[Any] = []
    reciprocal = 0.0
    for result in results[:RANKED]:
        if result.document["id"] in documents:
            continue
        documents.append(result.document["id"])
        if is_hit(result, pages):
            reciprocal = 1.0 / len(documents)
            break
    return {
        "hit@1": float(any(is_hit(r, pages) for r in results[:1])),
        "hit@5": float(any(is_hit(r, pages) for r in results[:5])),
        "mrr@10": reciprocal,
    }


def evaluate(
    kbs: Sequence[KnowledgeBase],
    questions: Sequence[Question],
    *,
    top_k: int,
    threshold: float,
    max_per_document: int | None = MAX_PER_DOCUMENT,
    details: bool = False,
) -> dict[str, Any]:
    """Metrics per mode (ranking quality, no threshold), then refusals in hybrid mode with
    the given ``top_k`` and ``threshold`` (the bot's settings)."""
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    report: dict[str, Any] = {"modes": {}}
    per_question: dict[str, dict[str, Any]] = {q.id: {"q": q.q} for q in questions}
    for mode in MODES:
        totals = {"hit@1": 0.0, "hit@5": 0.0, "mrr@10": 0.0}
        for question in answerable:
            results = retrieve(
                kbs, question.q, top_k=RANKED, mode=mode, max_per_document=max_per_document
            )
            got = ranks(results, question.pages)
            for name, value in got.items():
                totals[name] += value
            per_question[question.id][mode] = got
        report["modes"][mode] = {
            name: round(value / max(1, len(answerable)), 4) for name, value in totals.items()
        }
    refused: dict[str, list[str]] = {"answerable": [], "unanswerable": []}
    for question in questions:
        results = retrieve(
            kbs, question.q, top_k=top_k, threshold=threshold, max_per_document=max_per_document
        )
        per_question[question.id]["top_score"] = round(results[0].score, 4) if results else None
        if not results:
            refused["answerable" if question.answerable else "unanswerable"].append(question.id)
    report["refusal"] = {
        "threshold": threshold,
        "unanswerable": len(unanswerable),
        "unanswerable_refused": len(refused["unanswerable"]),
        "refusal_rate": round(len(refused["unanswerable"]) / max(1, len(unanswerable)), 4),
        "answerable": len(answerable),
        "answerable_refused": len(refused["answerable"]),
        "false_refusal_rate": round(len(refused["answerable"]) / max(1, len(answerable)), 4),
        "wrongly_refused": refused["answerable"],
        "wrongly_answered": [q.id for q in unanswerable if q.id not in refused["unanswerable"]],
    }
    if details:
        report["questions"] = per_question
    return report
