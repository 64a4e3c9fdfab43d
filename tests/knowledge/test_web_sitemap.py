"""Sitemaps: nested indexes, gzip (file and transfer), limits, robots.txt, hostile XML."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from knowledge.web.fetcher import Fetcher
from knowledge.web.sitemap import (
    SitemapError,
    SitemapLimits,
    SitemapResult,
    parse_sitemap,
    read_sitemaps,
    sitemaps_from_robots,
)
from tests.knowledge.webfixtures.helpers import FAST, LOCAL, run
from tests.knowledge.webfixtures.server import Route, SiteServer

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
XML = "application/xml"


def urlset(*locs: str, lastmod: str = "") -> str:
    items = "".join(
        f"<url><loc>{loc}</loc>{f'<lastmod>{lastmod}</lastmod>' if lastmod else ''}</url>"
        for loc in locs
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{items}</urlset>'


def index(*locs: str) -> str:
    items = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{items}</sitemapindex>'


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        server.routes["/robots.txt"] = Route(
            f"User-agent: *\nDisallow: /private/\nSitemap: {server.url('/sitemap_index.xml')}\n",
            content_type="text/plain",
        )
        yield server


def read(site: SiteServer, start: str | list[str], **options) -> SitemapResult:  # type: ignore[no-untyped-def]
    async def go() -> SitemapResult:
        async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
            return await read_sitemaps(start, fetcher, **options)

    return run(go())


def test_a_sitemap_index_with_nested_and_gzipped_sitemaps(site: SiteServer) -> None:
    u = site.url
    site.routes["/sitemap_index.xml"] = Route(
        index(u("/pages.xml"), u("/blog.xml.gz"), u("/nested_index.xml")), content_type=XML
    )
    site.routes["/pages.xml"] = Route(
        urlset(u("/"), u("/about"), lastmod="2024-05-01T10:00:00+02:00"), content_type=XML
    )
    # A .xml.gz file served as such...
    site.routes["/blog.xml.gz"] = Route(
        gzip.compress(urlset(u("/blog/1"), u("/blog/2"), lastmod="2024-06-01").encode()),
        content_type="application/x-gzip",
    )
    site.routes["/nested_index.xml"] = Route(index(u("/docs.xml")), content_type=XML)
    # ...and a sitemap compressed in transit (Content-Encoding).
    site.routes["/docs.xml"] = Route(
        gzip.compress(urlset(u("/docs/a"), u("/private/secret")).encode()),
        content_type=XML,
        headers={"Content-Encoding": "gzip"},
    )
    result = read(site, u("/sitemap_index.xml"))
    assert result.urls == [u("/"), u("/about"), u("/blog/1"), u("/blog/2"), u("/docs/a")]
    assert result.disallowed == [u("/private/secret")]
    assert result.entries[0].lastmod == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert result.entries[2].lastmod == datetime(2024, 6, 1, tzinfo=UTC)
    assert result.errors == [] and not result.truncated
    assert len(result.sitemaps_read) == 5


def test_sitemaps_are_discovered_through_robots_txt(site: SiteServer) -> None:
    async def go() -> list[str]:
        async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
            return await sitemaps_from_robots(site.url("/some/page"), fetcher)

    assert run(go()) == [site.url("/sitemap_index.xml")]
    site.routes["/robots.txt"] = Route("User-agent: *\nAllow: /\n", content_type="text/plain")
    assert run(go()) == [site.url("/sitemap.xml")]


def test_limits_stop_runaway_sitemaps(site: SiteServer) -> None:
    u = site.url
    site.routes["/big.xml"] = Route(urlset(*(u(f"/p{i}") for i in range(50))), content_type=XML)
    capped = read(site, u("/big.xml"), limits=SitemapLimits(max_urls=10))
    assert len(capped.urls) == 10 and capped.truncated

    # An index that lists itself, and a chain deeper than allowed.
    site.routes["/loop.xml"] = Route(index(u("/loop.xml"), u("/d1.xml")), content_type=XML)
    for depth in range(1, 6):
        site.routes[f"/d{depth}.xml"] = Route(index(u(f"/d{depth + 1}.xml")), content_type=XML)
    deep = read(site, u("/loop.xml"), limits=SitemapLimits(max_depth=2))
    assert deep.urls == [] and any("nested deeper" in error for error in deep.errors)
    assert site.paths().count("/loop.xml") == 1

    many = read(site, u("/loop.xml"), limits=SitemapLimits(max_sitemaps=2, max_depth=10))
    assert many.truncated and len(many.sitemaps_read) == 2


def test_pages_on_other_hosts_are_left_out(site: SiteServer) -> None:
    with SiteServer() as other:
        other.routes["/robots.txt"] = Route("User-agent: *\nAllow: /\n", content_type="text/plain")
        elsewhere = f"http://localhost:{other.port}/x"  # another host name, also loopback
        site.routes["/s.xml"] = Route(
            urlset(site.url("/ok"), elsewhere, "ftp://x/y"), content_type=XML
        )
        assert read(site, site.url("/s.xml")).urls == [site.url("/ok")]
        assert read(site, site.url("/s.xml"), same_host=False).urls == [site.url("/ok"), elsewhere]


def test_failures_are_recorded_and_the_rest_carries_on(site: SiteServer) -> None:
    site.routes["/i.xml"] = Route(
        index(site.url("/missing.xml"), site.url("/broken.xml"), site.url("/ok.xml")),
        content_type=XML,
    )
    site.routes["/broken.xml"] = Route("<html><body>Not a sitemap</body></html>")
    site.routes["/ok.xml"] = Route(urlset(site.url("/fine")), content_type=XML)
    result = read(site, site.url("/i.xml"))
    assert result.urls == [site.url("/fine")]
    assert len(result.errors) == 2


def test_entities_are_never_expanded() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<urlset " + NS.encode() + b"><url><loc>https://a.example/&x;</loc></url></urlset>"
    )
    parsed = parse_sitemap(xxe, "https://a.example/s.xml")
    assert all("root:" not in entry.url for entry in parsed.entries)
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<urlset><url><loc>https://a.example/&c;</loc></url></urlset>"
    )
    parsed = parse_sitemap(laughs, "https://a.example/s.xml")
    assert all(len(entry.url) < 100 for entry in parsed.entries)


def test_a_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b" " * 5_000_000)
    with pytest.raises(SitemapError, match="inflates to more than"):
        parse_sitemap(bomb, "https://a.example/s.xml.gz", max_bytes=1_000_000)


def test_plain_text_sitemaps_are_read() -> None:
    parsed = parse_sitemap(
        b"https://a.example/1\n\nhttps://a.example/2\n", "https://a.example/s.txt"
    )
    assert parsed.kind == "text" and [e.url for e in parsed.entries] == [
        "https://a.example/1",
        "https://a.example/2",
    ]
