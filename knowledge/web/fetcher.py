"""A polite, guarded async HTTP fetcher: one instance per sync or crawl, sharing no state.

Every hop is vetted by the SSRF guard and then *connected to the vetted address*: the
transport's network backend swaps the host name for the pinned IP at connect time, while TLS
still verifies the certificate against (and sends SNI for) the real host name. A host that
was never vetted cannot be connected to at all.

Politeness: per host, at most ``host_concurrency`` requests at once and request starts spaced
by ``host_delay`` or the robots.txt Crawl-delay (capped by ``max_crawl_delay``). robots.txt is
fetched once per origin per Fetcher. Redirects are followed by hand, each hop re-checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from knowledge.web import USER_AGENT, setting
from knowledge.web.content import DOCUMENT_TYPES, canonical_link, classify
from knowledge.web.robots import MAX_ROBOTS_BYTES, RobotsRules
from knowledge.web.ssrf import BlockedURL, IPNetwork, aresolve_and_check, resolve_networks

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
Accept = Literal["page", "any"]
# (host, port) → the vetted addresses the transport may connect to for it.
Pins = dict[tuple[str, int], tuple[str, ...]]


class BodyTooLarge(Exception):
    """The response body passed ``max_bytes``; the download was aborted."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Timeouts in seconds, sizes in bytes. ``from_settings`` reads ``PARLEY_FETCH_*``."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    host_concurrency: int = 2
    host_delay: float = 0.25
    max_crawl_delay: float = 30.0

    @classmethod
    def from_settings(cls) -> FetchLimits:
        default = cls()
        return cls(
            total_timeout=float(setting("PARLEY_FETCH_TIMEOUT", default.total_timeout)),
            max_bytes=int(setting("PARLEY_FETCH_MAX_BYTES", default.max_bytes)),
            max_redirects=int(setting("PARLEY_FETCH_MAX_REDIRECTS", default.max_redirects)),
            host_concurrency=int(
                setting("PARLEY_FETCH_HOST_CONCURRENCY", default.host_concurrency)
            ),
            host_delay=float(setting("PARLEY_FETCH_HOST_DELAY", default.host_delay)),
        )


@dataclass(slots=True)
class FetchResult:
    """The outcome of one fetch. ``ok`` means there is a fresh body to process."""

    url: str
    final_url: str
    status: int | None = None
    content_type: str = ""
    # "html", "document" (hand to the file parsers) or "" (anything else / nothing).
    kind: str = ""
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    canonical_url: str | None = None
    error: str | None = None
    gone: bool = False
    unchanged: bool = False
    blocked: bool = False
    disallowed: bool = False
    redirects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200 and not (self.gone or self.unchanged)

    @property
    def filename(self) -> str:
        """A file name with the extension of the content type, for the file parsers' sniffing."""
        name = urlsplit(self.final_url).path.rsplit("/", 1)[-1] or "index"
        extension = DOCUMENT_TYPES.get(self.content_type, "")
        return name if not extension or name.lower().endswith(extension) else name + extension


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses the guard vetted for (host, port), in order; refuses others."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, pins: Pins):
        self._inner = inner
        self._pins = pins

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get((host.lower().rstrip(".").strip("[]"), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked by the SSRF guard")
        # Every address was vetted; try them in order, as a resolver-driven connect would.
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
        return await self._inner.connect_tcp(
            addresses[-1], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are never used for fetching")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose connections go to pinned, vetted addresses only."""

    def __init__(self, pins: Pins, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        # httpx offers no public hook for the network backend; httpcore's pool keeps it here.
        pool = self._pool
        pool._network_backend = _PinnedBackend(pool._network_backend, pins)  # type: ignore[attr-defined]


@dataclass(slots=True)
class _HostSlot:
    semaphore: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0


class Fetcher:
    """Async fetcher; use ``async with Fetcher(...) as fetcher`` inside one event loop."""

    def __init__(
        self,
        *,
        allowed_networks: str | Iterable[str] | None = None,
        limits: FetchLimits | None = None,
        user_agent: str = USER_AGENT,
        respect_robots: bool = True,
    ) -> None:
        self.allowed_networks: tuple[IPNetwork, ...] = resolve_networks(allowed_networks)
        self.limits = limits or FetchLimits.from_settings()
        self.user_agent = user_agent
        self.respect_robots = respect_robots
        self._pins: Pins = {}
        self._hosts: dict[str, _HostSlot] = {}
        self._robots: dict[str, asyncio.Task[RobotsRules]] = {}
        limits_ = self.limits
        self._client = httpx.AsyncClient(
            transport=PinnedTransport(self._pins, retries=0),
            timeout=httpx.Timeout(
                connect=limits_.connect_timeout,
                read=limits_.read_timeout,
                write=limits_.read_timeout,
                pool=limits_.total_timeout,
            ),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._robots.values():
            task.cancel()
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: Accept = "page",
        check_robots: bool = True,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """GET ``url`` (conditionally when etag/last_modified are given); never raises."""
        result = FetchResult(url=url, final_url=url)
        headers = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(self.limits.total_timeout):
                await self._follow(result, headers, accept, check_robots, max_bytes)
        except BlockedURL as error:
            result.blocked, result.error = True, str(error)
        except TimeoutError:
            result.error = f"Timed out after {self.limits.total_timeout:g} s."
        except BodyTooLarge as error:
            result.error = str(error)
        except httpx.HTTPError as error:
            result.error = (
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            )
        return result

    async def _follow(
        self,
        result: FetchResult,
        headers: dict[str, str],
        accept: Accept,
        check_robots: bool,
        max_bytes: int | None,
    ) -> None:
        current = result.url
        for hop in range(self.limits.max_redirects + 1):
            vetted = await aresolve_and_check(current, self.allowed_networks)
            self._pins[(vetted.host, vetted.port)] = tuple(str(a) for a in vetted.addresses)
            if check_robots and self.respect_robots and not await self.can_fetch(current):
                result.disallowed = True
                result.error = f"robots.txt disallows {current} for {self.user_agent}."
                return
            result.final_url = current
            async with self._polite(vetted.host):
                location = await self._request(result, current, headers, accept, max_bytes)
            if location is None:
                return
            if hop == self.limits.max_redirects:
                result.error = f"Too many redirects (more than {self.limits.max_redirects})."
                return
            current = urljoin(current, location).split("#", 1)[0]
            result.redirects.append(current)

    async def _request(
        self,
        result: FetchResult,
        url: str,
        headers: dict[str, str],
        accept: Accept,
        max_bytes: int | None,
    ) -> str | None:
        """One request; the Location to follow, or None when ``result`` is complete."""
        limit = max_bytes or self.limits.max_bytes
        async with self._client.stream("GET", url, headers=headers) as response:
            result.status = response.status_code
            location = response.headers.get("location")
            if response.status_code in REDIRECT_CODES and location:
                return location
            result.etag = response.headers.get("etag")
            result.last_modified = response.headers.get("last-modified")
            if response.status_code == 304:
                result.unchanged = True
                return None
            if response.status_code in (404, 410):
                result.gone = True
                result.error = f"The page is gone (HTTP {response.status_code})."
                return None
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code} from {url}."
                return None
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(_too_large(url, limit))
            mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
            result.content_type, result.kind = classify(mime, url)
            if accept == "page" and not result.kind:
                result.error = f"Unsupported content type {mime or 'unknown'!r} at {url}."
                return None
            result.body = await _read_limited(response.aiter_bytes(), limit, url)
        if result.kind == "html":
            result.canonical_url = canonical_link(result.body, result.final_url)
        return None

    @contextlib.asynccontextmanager
    async def _polite(self, host: str) -> AsyncIterator[None]:
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = _HostSlot(asyncio.Semaphore(self.limits.host_concurrency))
        async with slot.semaphore:
            async with slot.lock:
                loop = asyncio.get_running_loop()
                wait = slot.next_start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                slot.next_start = loop.time() + await self._delay_for(host)
            yield

    async def _delay_for(self, host: str) -> float:
        delay = self.limits.host_delay
        for origin, task in self._robots.items():
            if urlsplit(origin).hostname == host and task.done() and not task.cancelled():
                crawl_delay = task.result().crawl_delay
                if crawl_delay:
                    delay = max(delay, min(crawl_delay, self.limits.max_crawl_delay))
        return delay

    async def robots(self, url: str) -> RobotsRules:
        """The robots.txt rules of ``url``'s origin, fetched once per Fetcher."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        task = self._robots.get(origin)
        if task is None:
            task = self._robots[origin] = asyncio.create_task(self._load_robots(origin))
        return await asyncio.shield(task)

    async def _load_robots(self, origin: str) -> RobotsRules:
        fetched = await self.fetch(
            f"{origin}/robots.txt", accept="any", check_robots=False, max_bytes=MAX_ROBOTS_BYTES
        )
        status = fetched.status or 0
        if fetched.status == 200 and not fetched.error:
            return RobotsRules.parse(fetched.body.decode("utf-8", errors="replace"))
        if 400 <= status < 500:
            return RobotsRules.allow_all(f"robots.txt answered HTTP {status}")
        return RobotsRules.deny_all(f"robots.txt unavailable: {fetched.error or status}")

    async def can_fetch(self, url: str) -> bool:
        """Whether robots.txt lets ParleyBot fetch ``url`` (always True if robots are ignored)."""
        return not self.respect_robots or (await self.robots(url)).can_fetch(url)


async def _read_limited(chunks: AsyncIterator[bytes], limit: int, url: str) -> bytes:
    # Counted after decoding, so a gzip bomb stops at the limit too.
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(_too_large(url, limit))
    return bytes(body)


def _too_large(url: str, limit: int) -> str:
    return f"{url} is larger than the {limit / (1024 * 1024):.1f} MB limit; download aborted."


def http_date(value: float) -> str:
    """A timestamp as an HTTP date (for If-Modified-Since built from a stored time)."""
    return email.utils.formatdate(value, usegmt=True)


def fetch_sync(url: str, **options: Any) -> FetchResult:
    """Fetch one URL from synchronous code (Celery tasks). Options: ``Fetcher`` and ``fetch``."""
    fetcher_keys = ("allowed_networks", "limits", "user_agent", "respect_robots")
    fetcher_options = {key: options.pop(key) for key in fetcher_keys if key in options}

    async def run() -> FetchResult:
        async with Fetcher(**fetcher_options) as fetcher:
            return await fetcher.fetch(url, **options)

    return asyncio.run(run())


__all__ = [
    "BodyTooLarge",
    "FetchLimits",
    "FetchResult",
    "Fetcher",
    "PinnedTransport",
    "fetch_sync",
    "http_date",
]
