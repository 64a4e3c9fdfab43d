"""`manage.py eval_retrieval --schema S --bot ID --qa FILE.jsonl`: retrieval quality of a
bot's knowledge on a question set, as JSON (knowledge.evaluation; docs/retrieval.md)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from chatbot.models import Bot
from knowledge.evaluation import evaluate, load_questions
from knowledge.retrieval import MAX_PER_DOCUMENT
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "hit@1, hit@5 and MRR@10 of hybrid, vector-only and keyword-only retrieval over a "
        "bot's knowledge bases, and its refusals with its relevance threshold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", required=True, help="the bot's tenant")
        parser.add_argument("--bot", required=True, help="the bot's public id")
        parser.add_argument("--qa", required=True, type=Path, help="questions (JSON lines)")
        parser.add_argument(
            "--threshold", type=float, help="instead of the bot's relevance threshold"
        )
        parser.add_argument(
            "--max-per-document",
            type=int,
            default=MAX_PER_DOCUMENT,
            help=f"at most this many passages per document (default {MAX_PER_DOCUMENT}, 0: any)",
        )
        parser.add_argument("--details", action="store_true", help="per-question results")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        schema = options["schema"]
        if schema == "public" or not Tenant.objects.filter(schema_name=schema).exists():
            raise CommandError(f"No tenant with schema {schema!r}.")
        try:
            questions = load_questions(options["qa"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        with schema_context(schema):
            bot = Bot.objects.filter(public_id=options["bot"]).first()
            if bot is None:
                raise CommandError(f"No bot {options['bot']!r} in {schema!r}.")
            kbs = list(bot.knowledge_bases.order_by("pk"))
            if not kbs:
                raise CommandError("The bot has no knowledge base.")
            threshold = options["threshold"]
            if threshold is None:
                threshold = bot.relevance_threshold
            report = evaluate(
                kbs,
                questions,
                top_k=bot.top_k,
                threshold=threshold,
                max_per_document=options["max_per_document"],
                details=options["details"],
            )
        output = {
            "schema": schema,
            "bot": bot.public_id,
            "knowledge_bases": [
                {"id": kb.pk, "name": kb.name, "chunk_tokens": kb.chunk_tokens} for kb in kbs
            ],
            "questions": len(questions),
            "top_k": bot.top_k,
            "max_per_document": options["max_per_document"],
            **report,
        }
        self.stdout.write(json.dumps(output, indent=2))
