"""What the SDK-backed providers share: timeouts, one attempt's error handling, and one
HTTP connection pool per event loop.

Timeouts. httpx2's own timeouts apply per operation (connect, each read), so a server that
trickles a byte every few seconds would never trip them: every await on the SDK also runs
under a deadline for the whole attempt (`asyncio.timeout_at`, never spanning a `yield`,
which would cancel the consumer's code instead).

Connection pools. Building an SDK client with its own pool costs ~35 ms (TLS context);
a pool per event loop, shared by every SDK client made on that loop, keeps a provider per
answer cheap. Pools are bound to their loop, and a loop may be short-lived (`asyncio.run`
in a task), hence the small registry keyed by loop.
"""

from __future__ import annotations

import asyncio
import weakref
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import httpx2

from chatbot.llm.base import (
    ChatMessage,
    LLMRequest,
    Provider,
    ProviderError,
    Token,
    Usage,
    estimate_tokens,
)
from chatbot.llm.errors import map_error

T = TypeVar("T")
Within = Callable[[Awaitable[T]], Awaitable[T]]


@dataclass(frozen=True)
class Timeouts:
    total: float  # one whole attempt, first byte to last
    connect: float
    read: float  # the longest silence: before the first chunk, or between two chunks

    def for_httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.total, connect=self.connect, read=self.read)


class SDKProvider(Provider):
    """A provider speaking to a vendor through its SDK; subclasses implement `_attempt`."""

    sdk: ModuleType
    needs_key = True

    def __init__(self, *, api_key: str, base_url: str, timeouts: Timeouts) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.timeouts = timeouts

    def __repr__(self) -> str:  # the key stays out of reprs, and so out of tracebacks
        return f"<{type(self).__name__} {self.name} base_url={self.base_url!r}>"

    @abstractmethod
    def _attempt(self, request: LLMRequest, within: Within[Any]) -> AsyncIterator[Token | Usage]:
        """Stream one answer; `within(awaitable)` bounds each await by the deadline.
        Raise `ProviderError` (code "connection") if the stream ends before its end event."""

    def _check_configuration(self) -> None:
        if self.needs_key and not self.api_key:
            raise ProviderError("auth", f"{self.name}: no API key configured")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Token | Usage]:
        self._check_configuration()
        deadline = asyncio.get_running_loop().time() + self.timeouts.total

        async def within(awaitable: Awaitable[T]) -> T:
            async with asyncio.timeout_at(deadline):
                return await awaitable

        started = False
        try:
            async with aclosing(self._attempt(request, within)) as items:
                async for item in items:
                    started = started or isinstance(item, Token)
                    yield item
        except ProviderError as exc:
            if started and exc.retryable:
                raise _interrupted(exc) from exc
            raise
        except Exception as exc:  # noqa: BLE001 -- every SDK failure leaves as a ProviderError
            error, chain = map_error(exc, vendor=self.name, sdk=self.sdk, secret=self.api_key)
            if started and error.retryable:
                error = _interrupted(error)
            raise error from (exc if chain else None)


def _interrupted(exc: ProviderError) -> ProviderError:
    return ProviderError("interrupted", f"{exc} (after the first token)", status=exc.status)


def stream_ended_early(vendor: str) -> ProviderError:
    """A stream that stopped before its end event: the connection was closed cleanly
    mid-answer (the SDKs end such a stream silently rather than raising)."""
    return ProviderError("connection", f"{vendor}: the stream ended before its end event")


def estimated_usage(request: LLMRequest, output: str) -> Usage:
    prompt = "\n".join([request.system, *(message.content for message in request.messages)])
    return Usage(estimate_tokens(prompt), estimate_tokens(output), estimated=True)


def as_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": message.role, "content": message.content} for message in messages]


# loop id → (weak reference to the loop, {vendor: pool}); a few loops at most.
_pools: OrderedDict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], dict[str, Any]]] = (
    OrderedDict()
)
_MAX_LOOPS = 8


def shared_http_client(vendor: str, make: Callable[[], Any]) -> Any:
    """The connection pool of `vendor` on the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    for key, (ref, _) in list(_pools.items()):
        alive = ref()
        if alive is None or alive.is_closed():
            # Its sockets belong to a dead loop; dropping the pool lets the GC close them.
            del _pools[key]
    entry = _pools.get(id(loop))
    if entry is None or entry[0]() is not loop:
        entry = (weakref.ref(loop), {})
        _pools[id(loop)] = entry
        while len(_pools) > _MAX_LOOPS:
            _pools.popitem(last=False)
    pools = entry[1]
    client = pools.get(vendor)
    if client is None or client.is_closed:
        client = pools[vendor] = make()
    return client
