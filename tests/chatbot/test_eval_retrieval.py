"""`manage.py eval_retrieval`: hit@1, hit@5, MRR@10 per mode and refusals, on a small set
whose answers are known."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from chatbot.models import Bot
from knowledge import services
from knowledge.evaluation import Question, is_hit, ranks
from knowledge.models import Document
from knowledge.retrieval import DEFAULT_THRESHOLD, Result

PAGES = {
    "hours": "We are open Monday to Friday from 9am to 5pm. On Saturdays the shop opens at 10am.",
    "pets": "Dogs are welcome in all our stores as long as they stay on a lead.",
    "returns": "Items can be returned within 30 days with the receipt for a full refund.",
}
QUESTIONS = [
    {"id": "a1", "q": "What time do you open on Saturdays?", "pages": ["help/hours.html"]},
    {"id": "a2", "q": "Can I bring my dog into the store?", "pages": ["help/pets.html"]},
    {"id": "a3", "q": "How do I get a refund?", "pages": ["help/returns.html"]},
    # Answered by a page that is not in the knowledge base: a miss in every mode.
    {"id": "a4", "q": "Do you sell gift cards?", "pages": ["help/gift-cards.html"]},
    {"id": "u1", "q": "Who painted the Mona Lisa?", "pages": []},
]


@pytest.fixture
def shop_bot(kb_a, run_on_commit, tmp_path):
    for name, text in PAGES.items():
        run_on_commit(services.add_text_source, kb_a, name.title(), text)
        # Text sources have no URL; give each the page it would have on a website.
        Document.objects.filter(title=name.title()).update(
            url=f"https://shop.example.com/help/{name}.html?lang=en#top"
        )
    bot = Bot.objects.create(name="Shop", relevance_threshold=DEFAULT_THRESHOLD)
    bot.knowledge_bases.add(kb_a)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(row) for row in QUESTIONS) + "\n")
    connection.set_schema_to_public()
    return bot, qa


def run(*args: str) -> dict:
    out = StringIO()
    call_command("eval_retrieval", *args, stdout=out)
    return json.loads(out.getvalue())


def test_it_reports_metrics_per_mode_and_refusals(shop_bot):
    bot, qa = shop_bot
    report = run("--schema", "tenant_a", f"--bot={bot.public_id}", "--qa", str(qa))
    assert report["bot"] == bot.public_id and report["questions"] == 5
    # Three of the four answerable questions have their page first, the fourth none: by hand,
    # hit@1 = hit@5 = MRR@10 = 3/4 in every mode (each question shares a word with its page).
    for mode in ("hybrid", "vector", "keyword"):
        assert report["modes"][mode] == {"hit@1": 0.75, "hit@5": 0.75, "mrr@10": 0.75}, mode
    refusal = report["refusal"]
    assert refusal["threshold"] == DEFAULT_THRESHOLD
    assert (refusal["unanswerable"], refusal["unanswerable_refused"]) == (1, 1)
    assert refusal["refusal_rate"] == 1.0
    assert refusal["answerable"] == 4
    # The gift-card question has no answer in the knowledge either: refusing it is right,
    # but the set calls it answerable, so it counts as a false refusal (1 of 4).
    assert refusal["wrongly_refused"] == ["a4"]
    assert refusal["false_refusal_rate"] == 0.25


def test_a_threshold_of_zero_refuses_nothing(shop_bot):
    bot, qa = shop_bot
    report = run(
        "--schema", "tenant_a", f"--bot={bot.public_id}", "--qa", str(qa), "--threshold", "0",
        "--details",
    )  # fmt: skip
    assert report["refusal"]["unanswerable_refused"] == 0
    assert report["refusal"]["false_refusal_rate"] == 0.0
    assert report["questions"]["a1"]["hybrid"] == {"hit@1": 1.0, "hit@5": 1.0, "mrr@10": 1.0}


def test_it_refuses_unknown_tenants_and_bots(shop_bot, tmp_path):
    bot, qa = shop_bot
    with pytest.raises(CommandError, match="No tenant"):
        run("--schema", "nope", f"--bot={bot.public_id}", "--qa", str(qa))
    with pytest.raises(CommandError, match="No bot"):  # tenant B cannot evaluate A's bot
        run("--schema", "tenant_b", f"--bot={bot.public_id}", "--qa", str(qa))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "no id"}\n')
    with pytest.raises(CommandError, match=r"bad\.jsonl:1"):
        run("--schema", "tenant_a", f"--bot={bot.public_id}", "--qa", str(bad))


def result(document: int, url: str) -> Result:
    return Result("c", "t", 0.5, None, None, 0.0, [], None, "", {"id": document, "url": url})


def test_ranks_count_documents_and_compare_url_paths():
    pages = ("library/json.html",)
    assert is_hit(result(1, "http://127.0.0.1:8765/library/json.html#module-json"), pages)
    assert not is_hit(result(1, "http://127.0.0.1:8765/library/json.html.bak"), pages)
    assert is_hit(result(1, "library/json.html"), pages)  # a file name
    results = [
        result(1, "http://h/library/csv.html"),
        result(1, "http://h/library/csv.html"),  # the same document: not a new rank
        result(2, "http://h/library/pickle.html"),
        result(3, "http://h/library/json.html"),
    ]
    # json.html is the fourth result but the third document: MRR counts it at rank 3.
    assert ranks(results, pages) == {"hit@1": 0.0, "hit@5": 1.0, "mrr@10": pytest.approx(1 / 3)}
    assert ranks(results[:3], pages) == {"hit@1": 0.0, "hit@5": 0.0, "mrr@10": 0.0}
    assert Question("x", "q", ()).answerable is False
