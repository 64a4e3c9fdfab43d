"""Sitemaps: urlsets, sitemap indexes (nested), gzipped files, plain-text lists, robots.txt.

Every file is fetched through the :class:`Fetcher` (SSRF guard, limits, politeness); parsing
never touches the network. XML is parsed by lxml with entities, DTDs and network access off,
and gzip is inflated with a size cap, so neither an entity bomb nor a gzip bomb gets far.
Page URLs that robots.txt disallows are reported apart, not returned.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from lxml import etree

from knowledge.web.fetcher import Fetcher

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "recover": True,
    "remove_comments": True,
}


@dataclass(frozen=True, slots=True)
class SitemapLimits:
    max_urls: int = 50_000
    max_depth: int = 3  # index → index → index → urlset
    max_sitemaps: int = 100
    # Inflated size of one sitemap file (the protocol caps them at 50 MB).
    max_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    lastmod: datetime | None = None


@dataclass(slots=True)
class ParsedSitemap:
    """One file's content: page entries (urlset, text) or child sitemaps (index)."""

    kind: str  # "urlset", "index", "text" or "unknown"
    entries: list[SitemapEntry] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SitemapResult:
    entries: list[SitemapEntry] = field(default_factory=list)
    sitemaps_read: list[str] = field(default_factory=list)
    disallowed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def urls(self) -> list[str]:
        return [entry.url for entry in self.entries]


class SitemapError(ValueError):
    pass


def inflate(data: bytes, max_bytes: int) -> bytes:
    """Gunzip ``data`` if it is gzip (by magic bytes), refusing output over ``max_bytes``."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as error:
        raise SitemapError(f"Corrupt gzip data: {error}") from error
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise SitemapError(f"The sitemap inflates to more than {max_bytes} bytes.")
    return out


def parse_lastmod(value: str | None) -> datetime | None:
    """W3C datetime ("2024-05-01", "2024-05-01T10:00:00+02:00", "...Z") → aware datetime."""
    if not value or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _child_text(element: etree._Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def parse_sitemap(data: bytes, url: str, *, max_bytes: int = 50 * 1024 * 1024) -> ParsedSitemap:
    """Parse one sitemap file (maybe gzipped); relative locations resolve against ``url``."""
    data = inflate(data, max_bytes).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not data.startswith(b"<"):
        lines = data.decode("utf-8", errors="replace").splitlines()
        urls = [line.strip() for line in lines if line.strip().startswith(("http://", "https://"))]
        return ParsedSitemap("text" if urls else "unknown", [SitemapEntry(u) for u in urls])
    try:
        root = etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError as error:
        raise SitemapError(f"Not a readable sitemap: {error}") from error
    if root is None:
        raise SitemapError("Not a readable sitemap: empty document.")
    kind = _local(root.tag)
    if kind == "sitemapindex":
        locations = [_child_text(item, "loc") for item in root if _local(item.tag) == "sitemap"]
        return ParsedSitemap("index", sitemaps=[urljoin(url, loc) for loc in locations if loc])
    if kind == "urlset":
        entries = [
            SitemapEntry(urljoin(url, loc), parse_lastmod(_child_text(item, "lastmod")))
            for item in root
            if _local(item.tag) == "url" and (loc := _child_text(item, "loc"))
        ]
        return ParsedSitemap("urlset", entries)
    return ParsedSitemap("unknown")


async def sitemaps_from_robots(site_url: str, fetcher: Fetcher) -> list[str]:
    """``Sitemap:`` lines of the site's robots.txt, else the conventional ``/sitemap.xml``."""
    rules = await fetcher.robots(site_url)
    parts = urlsplit(site_url)
    return rules.sitemaps or [f"{parts.scheme}://{parts.netloc}/sitemap.xml"]


async def read_sitemaps(
    sitemap_urls: str | list[str],
    fetcher: Fetcher,
    *,
    limits: SitemapLimits | None = None,
    same_host: bool = True,
) -> SitemapResult:
    """All page URLs reachable from ``sitemap_urls`` through nested indexes, within ``limits``.

    With ``same_host`` only pages on a start sitemap's host are kept (the sitemaps protocol
    requires it). Files that fail are recorded in ``errors`` and the rest carries on.
    """
    limits = limits or SitemapLimits()
    starts = [sitemap_urls] if isinstance(sitemap_urls, str) else list(sitemap_urls)
    hosts = {urlsplit(url).hostname for url in starts}
    result = SitemapResult()
    seen_sitemaps: set[str] = set()
    seen_urls: set[str] = set()
    level = [(url, 0) for url in starts]
    while level and not result.truncated:
        next_level: list[tuple[str, int]] = []
        for url, depth in level:
            if url in seen_sitemaps:
                continue
            if len(seen_sitemaps) >= limits.max_sitemaps:
                result.truncated = True
                result.errors.append(f"Stopped after {limits.max_sitemaps} sitemaps.")
                break
            seen_sitemaps.add(url)
            parsed = await _read_one(url, fetcher, limits, result)
            if parsed is None:
                continue
            if parsed.kind == "index":
                if depth >= limits.max_depth:
                    result.errors.append(f"{url}: sitemap indexes nested deeper than allowed.")
                else:
                    next_level.extend((child, depth + 1) for child in parsed.sitemaps)
                continue
            for entry in parsed.entries:
                if entry.url in seen_urls or not entry.url.startswith(("http://", "https://")):
                    continue
                if same_host and urlsplit(entry.url).hostname not in hosts:
                    continue
                if len(result.entries) >= limits.max_urls:
                    result.truncated = True
                    break
                seen_urls.add(entry.url)
                if await fetcher.can_fetch(entry.url):
                    result.entries.append(entry)
                else:
                    result.disallowed.append(entry.url)
        level = next_level
    return result


async def _read_one(
    url: str, fetcher: Fetcher, limits: SitemapLimits, result: SitemapResult
) -> ParsedSitemap | None:
    fetched = await fetcher.fetch(url, accept="any", check_robots=False, max_bytes=limits.max_bytes)
    if fetched.error or not fetched.body:
        result.errors.append(f"{url}: {fetched.error or 'empty response'}")
        return None
    try:
        parsed = parse_sitemap(fetched.body, fetched.final_url, max_bytes=limits.max_bytes)
    except SitemapError as error:
        result.errors.append(f"{url}: {error}")
        return None
    result.sitemaps_read.append(url)
    if parsed.kind == "unknown":
        result.errors.append(f"{url}: not a sitemap.")
    return parsed
