"""Rate limits kept in Redis through Django's cache, shared by every process.

    allowed, retry_after = hit("tenant_a:visitor:V123", limit=20, window_s=60)

`hit` is synchronous so that HTTP views and API endpoints can call it as they are; async
callers use `ahit`, which runs it in the default executor rather than on asgiref's single
thread-sensitive thread (where every visitor's database work queues up).

Two kinds of window:
- sliding (the default): the count of the current fixed window plus the previous window's
  count weighted by how much of it still overlaps the last `window_s` seconds (the
  "sliding window counter" approximation: two keys per scope, no per-hit storage). A burst
  at a window boundary cannot double the rate as it can with fixed windows.
- fixed: one counter per window; cheaper to reason about, allows 2x bursts at boundaries.

Refused hits are not counted, so a client that keeps trying is let in again as soon as its
earlier hits age out; `retry_after` (whole seconds, at least 1) says when that will be.
"""

from __future__ import annotations

import math
import time
from contextlib import suppress
from typing import NamedTuple

from asgiref.sync import sync_to_async
from django.core.cache import cache

KEY_PREFIX = "ratelimit"


class Decision(NamedTuple):
    allowed: bool
    retry_after: int  # seconds; 0 when allowed


def _key(scope_key: str, window_s: int, index: int) -> str:
    return f"{KEY_PREFIX}:{scope_key}:{window_s}:{index}"


def _increment(key: str, window_s: int) -> int:
    # Expire after two windows: a sliding window still reads the previous one.
    cache.add(key, 0, timeout=2 * window_s + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: start it again
        cache.set(key, 1, timeout=2 * window_s + 1)
        return 1


def _undo(key: str) -> None:
    with suppress(ValueError):  # expired meanwhile: nothing to undo
        cache.decr(key)


def hit(
    scope_key: str, limit: int, window_s: int, *, sliding: bool = True, now: float | None = None
) -> Decision:
    """Count one hit against `scope_key` (which should carry the tenant's schema) and say
    whether it is within `limit` hits per `window_s` seconds. A limit of 0 disables it."""
    if limit <= 0:
        return Decision(True, 0)
    now = time.time() if now is None else now
    index = int(now // window_s)
    elapsed = now - index * window_s
    current_key = _key(scope_key, window_s, index)
    count = _increment(current_key, window_s)
    previous = 0
    if sliding:
        previous = cache.get(_key(scope_key, window_s, index - 1)) or 0
    weight = 1 - elapsed / window_s
    if previous * weight + count <= limit:
        return Decision(True, 0)
    _undo(current_key)
    return Decision(False, _retry_after(count - 1, previous, limit, window_s, elapsed, sliding))


def _retry_after(
    current: int, previous: int, limit: int, window_s: int, elapsed: float, sliding: bool
) -> int:
    """Seconds until one more hit fits, given `current` hits already counted this window."""
    if not sliding or current + 1 > limit:
        # Wait for the next window; with a sliding window, also until this window's hits
        # (then the previous window's) have slid out far enough.
        wait = window_s - elapsed
        if sliding and current > 0:
            wait += max(0.0, window_s * (1 - (limit - 1) / current))
    else:
        # This window has room: wait until the previous window's weight drops enough.
        wait = window_s * (1 - (limit - current - 1) / previous) - elapsed
    return max(1, math.ceil(wait))


async def ahit(scope_key: str, limit: int, window_s: int, *, sliding: bool = True) -> Decision:
    """`hit` for async code (consumers): runs in the default thread pool."""
    if limit <= 0:
        return Decision(True, 0)
    return await sync_to_async(hit, thread_sensitive=False)(
        scope_key, limit, window_s, sliding=sliding
    )


def client_ip(peer: str | None, forwarded_for: str, trusted_proxies: int) -> str:
    """The client's address for per-IP limits. Behind `trusted_proxies` proxies that each
    append to X-Forwarded-For, the client is that many entries from the end (entries
    further left were written by the client and prove nothing); with no proxy trusted, the
    peer address. HTTP views pass REMOTE_ADDR and HTTP_X_FORWARDED_FOR."""
    if trusted_proxies > 0:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return peer or "unknown"
