"""The demo tenant's content: a bot that answers questions about Parley from Parley's own
documentation, so that a newcomer has something to ask right after `make run`."""

from __future__ import annotations

from django.conf import settings
from django_tenants.utils import schema_context

from chatbot.models import Bot

DOCS = ["README.md", *sorted(p.relative_to(settings.BASE_DIR).as_posix()
                             for p in (settings.BASE_DIR / "docs").glob("*.md"))]  # fmt: skip
QUESTIONS = [
    "How do I embed the widget on my site?",
    "Which LLM providers are supported?",
    "How does human handoff work?",
]


def ensure_demo_bot(schema: str) -> Bot:
    """The demo tenant's bot (made once; its knowledge is ingested by the worker)."""
    from knowledge import services as knowledge
    from knowledge.models import KnowledgeBase

    with schema_context(schema):
        bot = Bot.objects.filter(name="Parley guide").first()
        if bot is not None:
            return bot
        kb = KnowledgeBase.objects.create(
            name="Parley documentation", description="Parley's own docs, for the demo bot."
        )
        for name in DOCS:
            text = (settings.BASE_DIR / name).read_text(encoding="utf-8")
            knowledge.add_text_source(kb, name, text)
        bot = Bot.objects.create(
            name="Parley guide",
            title="Ask about Parley",
            greeting="Hi! I answer questions about Parley from its documentation.",
            suggested_questions=QUESTIONS,
        )
        bot.knowledge_bases.set([kb])
        return bot
