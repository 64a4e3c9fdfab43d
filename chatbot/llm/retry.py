"""Retries around one provider call: exponential backoff with full jitter, before the
first token only.

Once a token has reached the caller it may already be on a visitor's screen; a second
attempt would stream a different answer after it, so a failure after that point ends the
answer with a `ProviderError` of code "interrupted" instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

from django.conf import settings

from chatbot.llm.base import LLMRequest, Provider, ProviderError, Token, Usage, collect

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[object]]


def backoff_delay(
    attempt: int,
    *,
    base_delay: float,
    max_delay: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry).

    Full jitter (a uniform draw between 0 and `base_delay * 2 ** (attempt - 1)`, capped by
    `max_delay`) spreads the retries of many conversations hit by the same outage. A
    server's Retry-After wins, capped by `max_delay` too: a visitor is waiting.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_delay)
    ceiling = min(max_delay, base_delay * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0.0, ceiling)


async def stream_with_retries(
    provider: Provider,
    request: LLMRequest,
    *,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float = 8.0,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[Token | Usage]:
    """`provider.stream(request)`, tried up to `attempts` times (default
    `PARLEY_LLM_RETRIES`) on rate limits, server errors, timeouts and connection errors,
    as long as no token has been yielded."""
    attempts = attempts or settings.PARLEY_LLM_RETRIES
    base_delay = settings.PARLEY_LLM_RETRY_BASE_DELAY if base_delay is None else base_delay
    for attempt in range(1, attempts + 1):
        started = False
        try:
            async with aclosing(provider.stream(request)) as items:
                async for item in items:
                    started = started or isinstance(item, Token)
                    yield item
            return
        except ProviderError as exc:
            if started:
                if exc.code == "interrupted":
                    raise
                message = f"{exc} (after the first token)"
                raise ProviderError("interrupted", message, status=exc.status) from exc
            if not exc.retryable or attempt == attempts:
                raise
            delay = backoff_delay(
                attempt,
                base_delay=base_delay,
                max_delay=max_delay,
                retry_after=exc.retry_after,
                rng=rng,
            )
            logger.warning(
                "%s attempt %d/%d failed (%s); retrying in %.2fs",
                provider.name,
                attempt,
                attempts,
                exc,
                delay,
            )
        await sleep(delay)


async def complete_with_retries(
    provider: Provider,
    request: LLMRequest,
    *,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float = 8.0,
) -> tuple[str, Usage]:
    """The whole answer at once (query rewriting), with the retries of
    `stream_with_retries`."""
    items = stream_with_retries(
        provider, request, attempts=attempts, base_delay=base_delay, max_delay=max_delay
    )
    async with aclosing(items):
        return await collect(items)
