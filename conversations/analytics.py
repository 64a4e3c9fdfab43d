"""Analytics of a tenant's conversations: the figures behind the console's Analytics page and
`GET /api/v1/analytics/summary/`, computed by database aggregates over a period of UTC days.

`summary()` returns one plain, JSON-ready dict that both callers render as they are. Every
figure is an aggregate query (GROUP BY day, provider/model or normalised question text);
Python only zero-fills the day series and prices the handful of provider/model rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from chatbot.models import Bot
from conversations.models import Conversation, Message

DEFAULT_DAYS = 30
MAX_DAYS = 366  # bounds the day series (and the work) of one request
TOP_QUESTIONS = 10
UTC = dt.UTC

# USD per 1M tokens (input, output), from the vendors' public price lists as of PRICES_AS_OF.
# Prices change: the cost shown is an estimate, to be checked against the vendor's invoice.
# A model matches its own name or a dated/suffixed variant ("gpt-4o-2024-08-06"); the
# longest matching name wins, so "gpt-4o-mini" is not priced as "gpt-4o". Local, self-hosted
# (`openai_compatible`) and unlisted models cost 0 here and are marked "unknown".
PRICES_AS_OF = "2026-11-01"
PRICES_PER_1M: dict[str, dict[str, tuple[float, float]]] = {
    "openai": {
        "gpt-5": (1.25, 10.00),
        "gpt-5-mini": (0.25, 2.00),
        "gpt-5-nano": (0.05, 0.40),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "o3": (2.00, 8.00),
        "o3-mini": (1.10, 4.40),
        "o4-mini": (1.10, 4.40),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-3.5-turbo": (0.50, 1.50),
    },
    "anthropic": {
        "claude-opus-4-5": (5.00, 25.00),
        "claude-opus-4-1": (15.00, 75.00),
        "claude-opus-4": (15.00, 75.00),
        "claude-sonnet-4-5": (3.00, 15.00),
        "claude-sonnet-4": (3.00, 15.00),
        "claude-3-7-sonnet": (3.00, 15.00),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-haiku-4-5": (1.00, 5.00),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-opus": (15.00, 75.00),
    },
}


class PeriodError(ValueError):
    """A period parameter is not valid; `param` names it (`from`, `to` or `days`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Period:
    """UTC days from `start` (included) to `end` (excluded)."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        midnight = dt.time(tzinfo=UTC)
        return dt.datetime.combine(self.start, midnight), dt.datetime.combine(self.end, midnight)

    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range(self.days)]

    @classmethod
    def last_days(cls, days: int, today: dt.date | None = None) -> Period:
        """The last `days` days, today (UTC) included."""
        end = (today or dt.datetime.now(UTC).date()) + dt.timedelta(days=1)
        return cls(end - dt.timedelta(days=days), end)


def parse_date(param: str, raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise PeriodError(
            param, f"`{param}`: expected a date as YYYY-MM-DD, got {raw!r}."
        ) from None


def parse_period(
    raw_from: str | None, raw_to: str | None, *, today: dt.date | None = None
) -> Period:
    """The period of `?from=&to=` (dates, `to` excluded); missing ends default to the last
    DEFAULT_DAYS days up to today, or DEFAULT_DAYS days from `from`."""
    start = parse_date("from", raw_from) if raw_from else None
    end = parse_date("to", raw_to) if raw_to else None
    if start is None and end is None:
        return Period.last_days(DEFAULT_DAYS, today)
    if end is None:
        end = start + dt.timedelta(days=DEFAULT_DAYS)  # type: ignore[operator]
    if start is None:
        start = end - dt.timedelta(days=DEFAULT_DAYS)
    if end <= start:
        raise PeriodError("to", "`to` must be after `from` (`to` is excluded).")
    if (end - start).days > MAX_DAYS:
        raise PeriodError("to", f"The period is at most {MAX_DAYS} days.")
    return Period(start, end)


# --- SQL building blocks ------------------------------------------------------------------
class Percentile(Aggregate):
    """PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY expr)`: the continuous
    (interpolated) percentile; NULLs are ignored, an empty group gives NULL."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        # A float literal we made ourselves, never user input: safe to inline in the SQL.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def rate(part: int, whole: int) -> float | None:
    """part / whole, rounded; None (not 0) when there is nothing to divide."""
    return round(part / whole, 4) if whole else None


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- The figures --------------------------------------------------------------------------
def scoped(period: Period, bot: Bot | None) -> tuple[QuerySet[Conversation], QuerySet[Message]]:
    """Conversations started and messages written within the period, of one bot or all."""
    start, end = period.bounds
    conversations = Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
    messages = Message.objects.filter(created_at__gte=start, created_at__lt=end)
    if bot is not None:
        conversations = conversations.filter(bot=bot)
        messages = messages.filter(conversation__bot=bot)
    return conversations.order_by(), messages.order_by()


ASSISTANT = Q(role=Message.Role.ASSISTANT)


def message_aggregates() -> dict[str, Aggregate]:
    """Per-message figures, used both per day and over the whole period. Rows are counted
    on `role` (never null, and read anyway) rather than the UUID key, which would widen the
    rows PostgreSQL sorts for the per-day percentiles."""
    return {
        "messages": Count("role"),
        "questions": Count("role", filter=Q(role=Message.Role.USER)),
        "answers": Count("role", filter=ASSISTANT),
        "agent_messages": Count("role", filter=Q(role=Message.Role.AGENT)),
        "answered": Count("role", filter=ASSISTANT & Q(answered=True)),
        "ratings_up": Count("role", filter=ASSISTANT & Q(rating=Message.Rating.UP)),
        "ratings_down": Count("role", filter=ASSISTANT & Q(rating=Message.Rating.DOWN)),
        "latency_p50": Percentile("latency_ms", 0.5, filter=ASSISTANT),
        "latency_p95": Percentile("latency_ms", 0.95, filter=ASSISTANT),
        "ttft_p50": Percentile("ttft_ms", 0.5, filter=ASSISTANT),
        "ttft_p95": Percentile("ttft_ms", 0.95, filter=ASSISTANT),
    }


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    row["answered_rate"] = rate(row["answered"], row["answers"])
    row["thumbs_up_ratio"] = rate(row["ratings_up"], row["ratings_up"] + row["ratings_down"])
    for name in ("latency_p50", "latency_p95", "ttft_p50", "ttft_p95"):
        row[name] = ms(row[name])
    return row


def daily(
    period: Period, conversations: QuerySet[Conversation], messages: QuerySet[Message]
) -> list[dict[str, Any]]:
    """One row per UTC day of the period, days without activity included (zeros)."""
    day = TruncDate("created_at", tzinfo=UTC)
    started = dict(
        conversations.annotate(day=day)
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    per_day = {
        row.pop("day"): row
        for row in messages.annotate(day=day).values("day").annotate(**message_aggregates())
    }
    empty = dict.fromkeys(message_aggregates(), 0) | dict.fromkeys(
        ("latency_p50", "latency_p95", "ttft_p50", "ttft_p95")
    )
    return [
        {"date": date.isoformat(), "conversations": started.get(date, 0)}
        | with_rates(dict(per_day.get(date, empty)))
        for date in period.dates()
    ]


def price_of(provider: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None when the model is not in the table."""
    table = PRICES_PER_1M.get(provider, {})
    matches = [name for name in table if model == name or model.startswith(f"{name}-")]
    return table[max(matches, key=len)] if matches else None


def by_model(messages: QuerySet[Message]) -> list[dict[str, Any]]:
    """Answers, tokens and estimated cost per provider and model, most tokens first."""
    rows = (
        messages.filter(ASSISTANT)
        .values("provider", "model")
        .annotate(
            answers=Count("role"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            estimated_answers=Count("role", filter=Q(tokens_estimated=True)),
        )
        .order_by("-tokens_in", "provider", "model")
    )
    result = []
    for row in rows:
        price = price_of(row["provider"], row["model"])
        cost = 0.0
        if price is not None:
            cost = (row["tokens_in"] * price[0] + row["tokens_out"] * price[1]) / 1_000_000
        result.append(
            row
            | {
                "price": "list" if price else "unknown",
                "input_per_1m": price[0] if price else None,
                "output_per_1m": price[1] if price else None,
                "cost_usd": round(cost, 4),
            }
        )
    return result


# Top questions in one pass over the visitor messages of the period (each records whether
# the bot's reply answered it: conversations.services marks it), identical texts are
# counted first (cheap hash grouping), and only the distinct texts are normalised (a
# regular expression per row is what costs). The inner query comes from the ORM, so it
# carries the same period and bot filters as every other figure.
TOP_QUESTIONS_SQL = r"""
WITH asks AS ({inner}),
by_text AS (
    SELECT ask, COUNT(*) AS n, COUNT(*) FILTER (WHERE next_answered) AS answered
    FROM asks WHERE ask IS NOT NULL GROUP BY ask
)
SELECT BTRIM(REGEXP_REPLACE(LOWER(ask), '\s+', ' ', 'g'), ' ?!.') AS text,
       SUM(n)::integer AS count,
       SUM(answered)::integer AS answered,
       BTRIM(REGEXP_REPLACE((ARRAY_AGG(ask ORDER BY n DESC, ask))[1], '\s+', ' ', 'g'))
FROM by_text
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT %s
"""


def top_questions(messages: QuerySet[Message], limit: int = TOP_QUESTIONS) -> list[dict[str, Any]]:
    """The most frequent visitor questions, grouped with case, spacing and closing
    punctuation ignored and shown in their most frequent spelling, with how often the bot
    answered them: the bot's reply to the question answered it (a refusal, a failure, a
    person's reply or no reply is not)."""
    inner = (
        messages.filter(role=Message.Role.USER)
        .annotate(ask=F("content"), next_answered=Coalesce(F("answered"), Value(False)))
        .values("ask", "next_answered")
    )
    sql, params = inner.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(TOP_QUESTIONS_SQL.format(inner=sql), [*params, limit])
        rows = cursor.fetchall()
    return [
        {
            "question": spelling,
            "normalised": text,
            "count": count,
            "answered": answered,
            "answered_share": rate(answered, count),
        }
        for text, count, answered, spelling in rows
    ]


def summary(period: Period, bot: Bot | None = None) -> dict[str, Any]:
    """Every figure of the period (and bot), as a JSON-ready dict."""
    conversations, messages = scoped(period, bot)
    days = daily(period, conversations, messages)
    totals = with_rates(messages.aggregate(**message_aggregates()))
    models = by_model(messages)
    latency = {name: totals.pop(f"latency_{name}") for name in ("p50", "p95")}
    ttft = {name: totals.pop(f"ttft_{name}") for name in ("p50", "p95")}
    totals = {
        "conversations": sum(day["conversations"] for day in days),
        **totals,
        "tokens_in": sum(row["tokens_in"] for row in models),
        "tokens_out": sum(row["tokens_out"] for row in models),
        "cost_usd": round(sum(row["cost_usd"] for row in models), 4),
    }
    return {
        "period": {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "days": period.days,
            "timezone": "UTC",
        },
        "bot": {"id": bot.public_id, "name": bot.name} if bot else None,
        "totals": totals,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "daily": days,
        "models": models,
        "top_questions": top_questions(messages),
        "prices_as_of": PRICES_AS_OF,
    }
