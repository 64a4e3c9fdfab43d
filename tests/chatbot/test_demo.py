"""The demo tenant's bot: made once, answering from Parley's own docs."""

from __future__ import annotations

from chatbot.demo import DOCS, ensure_demo_bot
from chatbot.models import Bot
from knowledge.models import Source


def test_the_demo_bot_is_made_once_with_the_docs_as_knowledge(
    in_tenant_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        bot = ensure_demo_bot("tenant_a")
    assert bot.suggested_questions and bot.provider == "extractive"
    kb = bot.knowledge_bases.get()
    titles = set(Source.objects.filter(knowledge_base=kb).values_list("title", flat=True))
    assert titles == set(DOCS) and "docs/answers.md" in titles
    assert len(queued) == len(DOCS)  # one ingestion per document, after commit
    assert ensure_demo_bot("tenant_a").pk == bot.pk
    assert Bot.objects.filter(name="Parley guide").count() == 1
