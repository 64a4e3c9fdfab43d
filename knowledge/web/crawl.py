"""Crawl a site from a start URL: breadth first, same host, within page and depth limits.

All state lives on the :class:`Crawler` (and its :class:`Fetcher`): two crawls in one process
share nothing. Depth is exact because the crawl goes level by level.

Include and exclude patterns: a pattern starting with ``re:`` is a regular expression searched
in the full URL (``re:/docs/v[0-9]+/``); any other pattern is a glob (``fnmatch``, where ``*``
also matches ``/``) matched against the URL's path and query (``/docs/*``), or against the
full URL when it contains ``://``. Exclude wins over include; no include means everything.
The start URL is always fetched to find links, but it only counts as a page if it matches.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from knowledge.web.extract import ExtractedPage, extract_html, parse_html
from knowledge.web.fetcher import Fetcher, FetchResult

TRACKING_PARAMS = re.compile(r"^(utm_\w+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|yclid)$", re.I)
_SKIPPED_EXTENSIONS = re.compile(
    r"\.(png|jpe?g|gif|webp|svg|ico|css|js|mjs|zip|gz|tar|mp3|mp4|webm|avi|mov|woff2?|ttf|exe)$",
    re.I,
)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL without fragment or tracking parameters, or None if not a page URL.

    Scheme and host are lower-cased, default ports dropped, an empty path becomes ``/``; the
    remaining query keeps its order.
    """
    url = url.strip()
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if not TRACKING_PARAMS.match(k)]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def compile_patterns(patterns: Iterable[str]) -> list[Callable[[str], bool]]:
    """Matchers for include/exclude patterns (see the module docstring for the syntax)."""
    matchers: list[Callable[[str], bool]] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        if pattern.startswith("re:"):
            regex = re.compile(pattern[3:])
            matchers.append(lambda url, regex=regex: bool(regex.search(url)))
        elif "://" in pattern:
            matchers.append(lambda url, glob=pattern: fnmatch.fnmatchcase(url, glob))
        else:
            matchers.append(lambda url, glob=pattern: fnmatch.fnmatchcase(_path_query(url), glob))
    return matchers


def _path_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def page_links(html: bytes | str, base_url: str) -> list[str]:
    """Normalised links of a page (``<a href>``, ``<area href>``), honouring ``<base href>``."""
    tree = parse_html(html)
    if tree is None:
        return []
    bases = tree.xpath("//base/@href")
    base = urljoin(base_url, str(bases[0]).strip()) if bases else base_url
    links: list[str] = []
    for href in tree.xpath("//a/@href | //area/@href"):
        normalized = normalize_url(str(href), base)
        if normalized and normalized not in links:
            links.append(normalized)
    return links


@dataclass(slots=True)
class CrawledPage:
    url: str
    depth: int
    result: FetchResult
    # For HTML pages; documents (PDF, DOCX...) carry their bytes in ``result.body``.
    extracted: ExtractedPage | None = None


@dataclass(slots=True)
class CrawlResult:
    pages: list[CrawledPage] = field(default_factory=list)
    # url → why it was not returned: "robots", "blocked", "duplicate", "off_host", "error: …",
    # "excluded", "empty: …", "unsupported".
    skipped: dict[str, str] = field(default_factory=dict)
    truncated: bool = False


class Crawler:
    """One crawl. ``await Crawler(...).run()``; ``max_depth`` 0 fetches only the start URL."""

    def __init__(
        self,
        start_url: str,
        fetcher: Fetcher,
        *,
        max_pages: int = 100,
        max_depth: int = 3,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        concurrency: int = 4,
    ) -> None:
        start = normalize_url(start_url)
        if start is None:
            raise ValueError(f"Not an http(s) URL: {start_url!r}")
        self.start_url = start
        self.host = urlsplit(start).hostname
        self.fetcher = fetcher
        self.max_pages = max_pages
        self.max_depth = max_depth
        self.include = compile_patterns(include)
        self.exclude = compile_patterns(exclude)
        self.concurrency = concurrency
        self.result = CrawlResult()
        self._seen_urls: set[str] = {start}
        self._seen_content: set[str] = set()
        self._seen_canonical: set[str] = set()
        # Breadth-first position: the level being fetched, how far into it, its links.
        self._level = [start]
        self._depth = 0
        self._position = 0
        self._found: list[str] = []

    def wanted(self, url: str) -> bool:
        if any(match(url) for match in self.exclude):
            return False
        return not self.include or any(match(url) for match in self.include)

    async def run(self) -> CrawlResult:
        while await self.next_batch() is not None:
            pass
        return self.result

    async def next_batch(self) -> list[CrawledPage] | None:
        """Fetch the next few pages; return those kept (maybe none), or None when the crawl
        is over. Callers that store pages or may cancel drive the crawl with this, between
        batches, from synchronous code (``asyncio.Runner``)."""
        while self._position >= len(self._level):
            if self._depth >= self.max_depth or not self._advance():
                return None
        if len(self.result.pages) >= self.max_pages:
            self.result.truncated = True
            return None
        batch = self._level[self._position : self._position + self.concurrency]
        self._position += len(batch)
        fetched = await asyncio.gather(*(self._fetch(url, self._depth) for url in batch))
        before = len(self.result.pages)
        for page in fetched:
            self._found.extend(self._accept(page))
        return self.result.pages[before:]

    def _advance(self) -> bool:
        """Move to the next depth; False when it holds nothing to fetch."""
        level = []
        for url in self._found:
            if url not in self._seen_urls and self._follows(url):
                self._seen_urls.add(url)
                level.append(url)
        self._level, self._found, self._position = level, [], 0
        self._depth += 1
        return bool(level)

    def _follows(self, url: str) -> bool:
        if urlsplit(url).hostname != self.host or _SKIPPED_EXTENSIONS.search(urlsplit(url).path):
            return False
        if not self.wanted(url):
            self.result.skipped[url] = "excluded"
            return False
        return True

    async def _fetch(self, url: str, depth: int) -> _Fetched:
        """Fetch and extract (concurrently with the rest of the batch)."""
        fetched = await self.fetcher.fetch(url)
        fetched_page = _Fetched(url, depth, fetched)
        if fetched.ok and fetched.kind == "html":
            if depth < self.max_depth:
                fetched_page.links = page_links(fetched.body, fetched.final_url)
            fetched_page.extracted = await asyncio.to_thread(
                extract_html, fetched.body, fetched.final_url
            )
        return fetched_page

    def _accept(self, page: _Fetched) -> list[str]:
        """De-duplicate and keep one fetched page, in discovery order; return links to follow."""
        url, fetched = page.url, page.result
        if fetched.error:
            reason = "robots" if fetched.disallowed else "blocked" if fetched.blocked else None
            self.result.skipped[url] = reason or f"error: {fetched.error}"
            return []
        final = normalize_url(fetched.final_url) or url
        if urlsplit(final).hostname != self.host:
            self.result.skipped[url] = "off_host"
            return []
        identity = normalize_url(fetched.canonical_url or "") or final
        if identity in self._seen_canonical or final in self._seen_canonical:
            self.result.skipped[url] = "duplicate"
            return []
        self._seen_canonical.update({identity, final})
        if page.extracted is not None and page.extracted.empty_reason:
            self.result.skipped[url] = f"empty: {page.extracted.empty_reason}"
            return page.links
        content = page.extracted.text.encode() if page.extracted is not None else fetched.body
        digest = hashlib.sha256(content).hexdigest()
        if digest in self._seen_content:
            self.result.skipped[url] = "duplicate"
            return page.links
        self._seen_content.add(digest)
        if url != self.start_url or self.wanted(url):
            if len(self.result.pages) >= self.max_pages:
                self.result.truncated = True
                return []
            self.result.pages.append(CrawledPage(url, page.depth, fetched, page.extracted))
        return page.links


@dataclass(slots=True)
class _Fetched:
    url: str
    depth: int
    result: FetchResult
    extracted: ExtractedPage | None = None
    links: list[str] = field(default_factory=list)


async def discover(
    start_url: str,
    max_pages: int,
    max_depth: int,
    include: Iterable[str],
    exclude: Iterable[str],
    fetcher: Fetcher,
) -> CrawlResult:
    """Crawl ``start_url`` with ``fetcher`` (one fresh :class:`Crawler`, no shared state)."""
    crawler = Crawler(
        start_url, fetcher, max_pages=max_pages, max_depth=max_depth, include=include,
        exclude=exclude,
    )  # fmt: skip
    return await crawler.run()


__all__ = [
    "CrawlResult",
    "CrawledPage",
    "Crawler",
    "compile_patterns",
    "discover",
    "normalize_url",
    "page_links",
]
