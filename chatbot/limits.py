"""Per-tenant quotas and rate limits, shared by HTTP and WebSockets.

Quotas (set per tenant by the platform, 0 = unlimited) are counted per calendar month (UTC)
from the tenant's own rows — visitor messages, LLM tokens in and out — and, for knowledge,
the documents (web pages and files) it holds. Usage is counted on each check (indexed on
the message time; a cache would let a burst run past the quota), and the next month starts
from zero by construction: the count starts at the month's first instant.

Rate limits (per API key, per visitor) go through `widget.ratelimit` (Redis, sliding
window), keyed by schema so that tenants never share a counter.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, Sum


class QuotaExceeded(Exception):
    """A tenant's quota is used up: `retry_after` seconds until it resets (None: never by
    itself, e.g. the document quota), `message` safe to show a visitor or a client."""

    def __init__(self, kind: str, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


VISITOR_QUOTA_MESSAGE = (
    "This chat has reached its limit for now. Please try again later or contact us another way."
)


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def seconds_to_next_month(now: datetime | None = None) -> int:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    start = month_start(now)
    return max(1, int((start + timedelta(days=days) - now).total_seconds()))


@dataclass
class Usage:
    messages: int
    llm_tokens: int
    documents: int


def usage(now: datetime | None = None) -> Usage:
    """This month's usage of the current tenant schema."""
    from conversations.models import Message
    from knowledge.models import Document

    month = Message.objects.filter(created_at__gte=month_start(now))
    messages = month.filter(role=Message.Role.USER).count()
    tokens = (
        month.filter(role=Message.Role.ASSISTANT)
        .exclude(Q(provider__in=["extractive", "none", ""]) | Q(tokens_estimated=True))
        .aggregate(total=Sum(F("tokens_in") + F("tokens_out")))["total"]
    )
    return Usage(messages=messages, llm_tokens=tokens or 0, documents=Document.objects.count())


def check_message_quota(tenant, *, llm: bool, now: datetime | None = None) -> None:  # type: ignore[no-untyped-def]
    """Raise QuotaExceeded when the tenant may not take another visitor message (or, with
    `llm`, another LLM call) this month. Call inside the tenant's schema."""
    # A schema_context() tenant (commands, tasks) carries no quotas: nothing to enforce.
    monthly = (
        getattr(tenant, "max_messages_per_month", 0),
        getattr(tenant, "max_llm_tokens_per_month", 0),
    )
    if not any(monthly):
        return
    used = usage(now)
    retry = seconds_to_next_month(now)
    if tenant.max_messages_per_month and used.messages >= tenant.max_messages_per_month:
        raise QuotaExceeded("messages", VISITOR_QUOTA_MESSAGE, retry)
    if (
        llm
        and tenant.max_llm_tokens_per_month
        and used.llm_tokens >= tenant.max_llm_tokens_per_month
    ):
        raise QuotaExceeded("llm_tokens", VISITOR_QUOTA_MESSAGE, retry)


def documents_left(tenant) -> int:  # type: ignore[no-untyped-def]
    quota = getattr(tenant, "max_documents", 0)
    return max(0, quota - usage().documents) if quota else 10**9


def check_document_quota(tenant, adding: int) -> None:  # type: ignore[no-untyped-def]
    if not getattr(tenant, "max_documents", 0):
        return
    used = usage().documents
    if used + adding > tenant.max_documents:
        raise QuotaExceeded(
            "documents",
            f"The knowledge quota is {tenant.max_documents:,} pages and files; "
            f"{used:,} are used, so {max(0, tenant.max_documents - used):,} more fit.",
            None,
        )


def api_rate(tenant) -> int:  # type: ignore[no-untyped-def]
    value = getattr(tenant, "api_requests_per_minute", None)
    return settings.PARLEY_API_RATE_PER_MINUTE if value is None else value


def visitor_rate(tenant) -> int:  # type: ignore[no-untyped-def]
    value = getattr(tenant, "visitor_messages_per_minute", None)
    return settings.PARLEY_VISITOR_MESSAGES_PER_MINUTE if value is None else value


def hit_api_key(tenant, key_id: int) -> tuple[bool, int]:  # type: ignore[no-untyped-def]
    from widget.ratelimit import hit

    decision = hit(f"{tenant.schema_name}:apikey:{key_id}", api_rate(tenant), 60)
    return decision.allowed, decision.retry_after
