#!/usr/bin/env python
"""Console pages over a busy tenant: the inbox, a transcript, analytics and the summary API.

    .venv/bin/python bench/console.py [--runs 7] [--messages 100000] [--reseed]

Seeds the `benchconsole` tenant of the development database (once: reused while it holds
the data) with ~100k messages in ~20k conversations over the last 90 days, three bots
(OpenAI, Anthropic, a local model) and realistic mixes of answered and unanswered
questions, ratings, latencies and handoffs, written with COPY; the conversations' counters
agree with their messages. Then renders each page through Django's test Client as a
logged-in superuser on the tenant's host: one warm-up, then `--runs` timed runs (median
and p95, nearest rank: with 7 runs the p95 is the slowest), the SQL queries of one more run
and its slowest queries. The baseline is the same pages on `benchconsole_empty`, a tenant
holding one conversation of the same length. Prints JSON; the target is under 1 s a page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from chatbot.models import ApiKey, Bot  # noqa: E402
from chatbot.services import create_api_key  # noqa: E402
from conversations.models import Conversation, Message  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

SCHEMA, BASELINE_SCHEMA = "benchconsole", "benchconsole_empty"
ADMIN_EMAIL = "bench@example.com"
DAYS = 90
TARGET_S = 1.0
# (name, provider, model, share of conversations, answered rate, median ms to first token)
BOTS = [
    ("Support", "openai", "gpt-4.1-mini", 0.55, 0.84, 450),
    ("Sales", "anthropic", "claude-haiku-4-5", 0.30, 0.78, 600),
    ("Docs", "openai_compatible", "llama3.1", 0.15, 0.70, 250),
]
COMMON = [
    "How do I request a refund?", "How long does shipping take?", "Do you ship abroad?",
    "How do I reset my password?", "What are your opening hours?", "Can I change my order?",
    "How do I cancel my subscription?", "Where is my order?", "Is there a student discount?",
    "How do I contact support?", "What payment methods do you accept?",
    "How long is the warranty?", "Can I return a gift?", "Do you have a mobile app?",
    "How do I update my billing address?", "What does the pro plan cost?",
    "Can I pay by invoice?", "How do I delete my account?", "Do you offer gift cards?",
    "Is my data stored in the EU?",
]  # fmt: skip
TOPICS = ["refunds", "delivery", "invoices", "the API", "passwords", "exports", "teams",
          "discounts", "returns", "SSO", "webhooks", "the mobile app"]  # fmt: skip
TEMPLATES = ["Can you tell me about {}?", "I have a problem with {}", "Question about {} please",
             "Why does {} not work for me?", "who handles {} at your company"]  # fmt: skip
ANSWER = (
    "You can do that from your account: open Settings, choose the relevant section and "
    "follow the steps shown there [1]. If anything looks wrong, our team can help [2]."
)


# --- Seeding ------------------------------------------------------------------------------
def question(rng: random.Random) -> str:
    """A visitor question: common ones follow a Zipf-like law and come in several spellings
    (case, spacing, punctuation), the rest is a long tail."""
    if rng.random() < 0.7:
        text = rng.choices(COMMON, weights=[1 / (i + 1) for i in range(len(COMMON))])[0]
        variant = rng.random()
        if variant < 0.15:
            return text.lower()
        if variant < 0.25:
            return f"  {text.rstrip('?')} "
        if variant < 0.3:
            return text.replace(" ", "  ", 1)
        return text
    return rng.choice(TEMPLATES).format(rng.choice(TOPICS)) + f" (#{rng.randrange(5000)})"


def sources(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"number": n, "title": f"Help centre article {rng.randrange(300)}",
         "url": f"https://help.example.com/articles/{rng.randrange(300)}",
         "heading_path": ["Help", "Account"], "snippet": "Open Settings, then …",
         "score": round(rng.uniform(0.45, 0.9), 3)}
        for n in range(1, rng.choice([1, 2, 2, 3]) + 1)
    ]  # fmt: skip


def answer_fields(rng: random.Random, bot: tuple, answered: bool) -> dict[str, Any]:
    _, provider, model, _, _, ttft_median = bot
    if not answered:  # the fallback message: no LLM call, no tokens
        latency = int(rng.uniform(60, 180))
        return {"content": "Sorry, I don't know the answer to that. Would you like to talk "
                "to a person?", "answered": False, "provider": provider, "model": model,
                "latency_ms": latency, "ttft_ms": latency}  # fmt: skip
    tokens_out = int(rng.uniform(60, 350))
    ttft = int(rng.lognormvariate(math.log(ttft_median), 0.45))
    return {
        "content": ANSWER, "sources": sources(rng), "answered": True, "provider": provider,
        "model": model, "tokens_in": int(rng.uniform(800, 2600)), "tokens_out": tokens_out,
        "tokens_estimated": provider == "openai_compatible",
        "ttft_ms": ttft, "latency_ms": ttft + int(tokens_out * rng.uniform(8, 22)),
    }  # fmt: skip


def one_conversation(
    rng: random.Random, bot_rows: list[tuple[int, tuple]], start: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A conversation and its messages, with counters that agree with the messages."""
    bot_id, bot = rng.choices(bot_rows, weights=[b[3] for _, b in bot_rows])[0]
    conversation_id = uuid.uuid4()
    messages: list[dict[str, Any]] = []
    at = start
    counts = {"unanswered": 0, "up": 0, "down": 0}
    for _ in range(rng.choices([1, 2, 3, 4, 5, 6], weights=[24, 34, 23, 11, 5, 3])[0]):
        messages.append({"role": "user", "content": question(rng), "created_at": at,
                         "tokens_in": 12, "tokens_estimated": True})  # fmt: skip
        answered = rng.random() < bot[4]
        messages[-1]["answered"] = answered  # as conversations.services marks the question
        fields = answer_fields(rng, bot, answered)
        at += dt.timedelta(milliseconds=fields["latency_ms"])
        if rng.random() < 0.12:  # some visitors rate an answer, unhappy ones more often
            fields["rating"] = "up" if rng.random() < (0.8 if answered else 0.25) else "down"
            fields["rated_at"] = at + dt.timedelta(seconds=5)
            counts[fields["rating"]] += 1
        counts["unanswered"] += not answered
        messages.append({"role": "assistant", "created_at": at, **fields})
        at += dt.timedelta(seconds=rng.uniform(10, 90))
    status = "bot"
    if counts["unanswered"] and rng.random() < 0.25:  # handed to a person
        status = rng.choice(["agent", "closed", "waiting"])
        if status != "waiting":
            messages.append({"role": "agent", "content": "Let me check that for you.",
                             "created_at": at})  # fmt: skip
    for message in messages:
        message.update(id=uuid.uuid4(), conversation_id=conversation_id)
    conversation = {
        "id": conversation_id, "bot_id": bot_id, "visitor_id": f"v-{rng.randrange(10**8)}",
        "channel": rng.choices(["widget", "page", "api"], weights=[70, 20, 10])[0],
        "status": status, "title": messages[0]["content"].strip()[:200],
        "message_count": len(messages), "unanswered_count": counts["unanswered"],
        "thumbs_up": counts["up"], "thumbs_down": counts["down"],
        "created_at": start, "updated_at": messages[-1]["created_at"],
        "last_message_at": messages[-1]["created_at"],
    }  # fmt: skip
    return conversation, messages


def start_times(rng: random.Random, now: dt.datetime) -> Iterator[dt.datetime]:
    """Arrival times over the last DAYS days: weekdays busier, traffic growing, office hours."""
    while True:
        age = DAYS * (1 - math.sqrt(rng.random()))  # more recent days are busier
        day = now - dt.timedelta(days=age)
        if day.weekday() >= 5 and rng.random() < 0.5:
            continue
        hour = min(23.99, max(0.0, rng.gauss(14, 4)))
        yield min(now, day.replace(hour=int(hour), minute=int(hour % 1 * 60)))


def copy_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """COPY rows into the model's table; fields a row does not give take their default."""
    # Generated columns (the message search vector) are computed by PostgreSQL.
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.GeneratedField)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                values = []
                for f in fields:
                    value = row[f.attname] if f.attname in row else f.get_default()
                    if isinstance(f, models.JSONField):
                        value = json.dumps(value)
                    values.append(value)
                copy.write_row(values)


def make_bots() -> list[tuple[int, tuple]]:
    rows = []
    for spec in BOTS:
        bot, _ = Bot.objects.get_or_create(
            name=spec[0], defaults={"provider": spec[1], "model": spec[2]}
        )
        rows.append((bot.pk, spec))
    return rows


def seed(schema: str, target_messages: int, *, reseed: bool, seed_value: int = 7) -> dict:
    """Fill the tenant once (COPY in one transaction); reuse it while it holds the data."""
    with schema_context(schema):
        existing = Message.objects.count()
        if existing >= target_messages and not reseed:
            return {"seeded": False, "messages": existing}
        began = time.perf_counter()
        rng = random.Random(seed_value)
        now = dt.datetime.now(dt.UTC)
        with transaction.atomic():
            truncate()
            bot_rows = make_bots()
            conversations, messages = [], []
            for start in start_times(rng, now):
                conversation, rows = one_conversation(rng, bot_rows, start)
                conversations.append(conversation)
                messages += rows
                if len(messages) >= target_messages:
                    break
            copy_rows(Conversation, conversations)
            copy_rows(Message, messages)
        with connection.cursor() as cursor:  # fresh statistics for the planner
            cursor.execute(f"ANALYZE {Conversation._meta.db_table}, {Message._meta.db_table}")
        return {"seeded": True, "messages": len(messages), "seconds": elapsed(began)}


def truncate() -> None:
    with connection.cursor() as cursor:
        # CASCADE: rows of other apps that point at conversations go with them.
        tables = f"{Message._meta.db_table}, {Conversation._meta.db_table}"
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def seed_baseline(template: Conversation) -> str:
    """The baseline tenant: the same bots and one conversation as long as `template`."""
    with schema_context(SCHEMA):
        rows = list(Message.objects.filter(conversation=template).values())
    with schema_context(BASELINE_SCHEMA):
        bot_rows = make_bots()
        conversation = Conversation.objects.order_by().first()
        if conversation is None or conversation.message_count != len(rows):
            Conversation.objects.all().delete()
            conversation = Conversation.objects.create(
                bot_id=bot_rows[0][0], title=template.title, message_count=len(rows)
            )
            copy_rows(Message, [row | {"id": uuid.uuid4(), "conversation_id": conversation.pk}
                                for row in rows])  # fmt: skip
        return str(conversation.pk)


# --- Measuring ----------------------------------------------------------------------------
def elapsed(began: float) -> float:
    return round(time.perf_counter() - began, 3)


def browser_and_api(schema: str, host: str) -> tuple[Client, Client]:
    create_tenant_site(schema, host, admin_email=ADMIN_EMAIL)
    client = Client(HTTP_HOST=host)
    with schema_context(schema):
        client.force_login(get_user_model().objects.get(username=ADMIN_EMAIL))
        ApiKey.objects.filter(name="bench-console").delete()
        _, raw = create_api_key("bench-console")
    return client, Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {raw}")


def measure(client: Client, url: str, runs: int) -> dict[str, Any]:
    """Median and p95 (nearest rank) of `runs` renders after a warm-up; queries of one more."""
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - began)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    ordered = sorted(times)
    slowest = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:2]
    return {
        "median_s": round(statistics.median(times), 4),
        "p95_s": round(ordered[math.ceil(0.95 * len(ordered)) - 1], 4),
        "queries": len(captured),
        "slowest_queries": [{"s": float(q["time"]), "sql": q["sql"][:160]} for q in slowest],
    }


def pages(transcript_id: str) -> dict[str, tuple[str, str]]:
    """Name → (client, URL): the console pages and the API, as a staff member uses them."""
    return {
        "inbox": ("browser", "/admin/conversations/conversation/"),
        "inbox_unanswered": ("browser", "/admin/conversations/conversation/?answered=no"),
        "inbox_search": ("browser", "/admin/conversations/conversation/?q=warranty"),
        "transcript": ("browser", f"/admin/conversations/conversation/{transcript_id}/change/"),
        "analytics_30d": ("browser", "/admin/analytics/"),
        "analytics_90d": ("browser", "/admin/analytics/?days=90"),
        "api_summary_30d": ("api", "/api/v1/analytics/summary/"),
        "api_summary_90d": (
            "api",
            f"/api/v1/analytics/summary/?from={days_ago(89)}&to={days_ago(-1)}",
        ),
    }


def days_ago(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)).isoformat()


def run(schema: str, host: str, transcript_id: str, runs: int) -> dict[str, Any]:
    browser, api = browser_and_api(schema, host)
    clients = {"browser": browser, "api": api}
    try:
        return {
            name: measure(clients[kind], url, runs)
            for name, (kind, url) in pages(transcript_id).items()
        }
    finally:
        with schema_context(schema):
            ApiKey.objects.filter(name="bench-console").delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--reseed", action="store_true", help="seed again even if seeded")
    args = parser.parse_args()

    ensure_public_tenant()
    create_tenant_site(SCHEMA, "benchconsole.localhost", name="Console benchmarks")
    create_tenant_site(BASELINE_SCHEMA, "benchconsole-empty.localhost", name="Console baseline")
    seeding = seed(SCHEMA, args.messages, reseed=args.reseed)
    with schema_context(SCHEMA):
        data = {
            "conversations": Conversation.objects.count(),
            "messages": Message.objects.count(),
            "bots": Bot.objects.count(),
            "first": Conversation.objects.order_by("created_at").first().created_at.date(),
            "last": Conversation.objects.order_by("-created_at").first().created_at.date(),
        }
        longest = Conversation.objects.order_by("-message_count", "pk").first()
    baseline_id = seed_baseline(longest)

    # The development settings serve static files through the manifest of `collectstatic`;
    # the bench renders pages without having run it, so it uses plain static URLs.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**django.conf.settings.STORAGES, "staticfiles": plain}):
        busy = run(SCHEMA, "benchconsole.localhost", str(longest.pk), args.runs)
        empty = run(BASELINE_SCHEMA, "benchconsole-empty.localhost", baseline_id, args.runs)

    result = {
        "bench": "console",
        "runs": args.runs,
        "target_s": TARGET_S,
        # Other processes share this machine's cores: the load says how busy it was.
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "data": data | {"transcript_messages": longest.message_count},
        "seeding": seeding,
        "pages": {
            name: figures
            | {
                "baseline_median_s": empty[name]["median_s"],
                "baseline_queries": empty[name]["queries"],
                "ratio": round(figures["median_s"] / max(empty[name]["median_s"], 1e-6), 1),
                "under_target": figures["p95_s"] < TARGET_S,
            }
            for name, figures in busy.items()
        },
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
