"""Crawling: same host, breadth first, depth and page limits, patterns, robots, de-duplication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from knowledge.web.crawl import CrawlResult, compile_patterns, discover, normalize_url, page_links
from knowledge.web.fetcher import Fetcher
from tests.knowledge.webfixtures.helpers import FAST, LOCAL, run
from tests.knowledge.webfixtures.server import Route, SiteServer


def page(title: str, *links: str, text: str | None = None, head: str = "") -> Route:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    body = text or f"This is the {title} page. It explains {title} in enough words to be kept."
    return Route(
        f"<html><head><title>{title}</title>{head}</head><body>"
        f"<nav><ul>{anchors}</ul></nav><main><h1>{title}</h1><p>{body}</p></main></body></html>"
    )


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        r = server.routes
        r["/robots.txt"] = Route("User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        r["/"] = page(
            "Home",
            "/a",
            "/b?utm_source=news&id=7#section",
            "/docs/1",
            "/docs/2",
            "/private/p",
            "/dup1",
            "/dup2",
            "/alias",
            "/guide.pdf",
            "/app",
            "/logo.png",
            "https://elsewhere.example/x",
            "mailto:team@example.com",
            "javascript:void(0)",
        )
        r["/a"] = page("A", "/a/deep", "/")
        r["/a/deep"] = page("Deep", "/a/deeper")
        r["/a/deeper"] = page("Deeper")
        r["/b"] = page("B")
        r["/docs/1"] = page("Docs one", "/docs/3")
        r["/docs/2"] = page("Docs two")
        r["/docs/3"] = page("Docs three")
        r["/private/p"] = page("Private")
        same = "Exactly the same words on two addresses, which only one of them should keep."
        r["/dup1"] = page("Same", text=same)
        r["/dup2"] = page("Same", text=same)
        r["/alias"] = page("B", head='<link rel="canonical" href="/b?id=7">')
        r["/guide.pdf"] = Route(b"%PDF-1.4 guide", content_type="application/pdf")
        r["/app"] = Route(
            '<html><body><div id="root"></div><noscript>Please enable JavaScript.</noscript>'
            '<script src="/app.js"></script></body></html>'
        )
        yield server


def crawl(site: SiteServer, **options) -> CrawlResult:  # type: ignore[no-untyped-def]
    settings = {"max_pages": 100, "max_depth": 3, "include": (), "exclude": ()} | options

    async def go() -> CrawlResult:
        async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
            return await discover(site.url("/"), fetcher=fetcher, **settings)

    return run(go())


def paths(result: CrawlResult) -> set[str]:
    return {page.url.split(":", 2)[2].split("/", 1)[1] for page in result.pages}


def test_it_crawls_the_site_within_its_host(site: SiteServer) -> None:
    result = crawl(site)
    assert paths(result) == {
        "", "a", "a/deep", "a/deeper", "b?id=7", "docs/1", "docs/2", "docs/3", "dup1",
        "guide.pdf",
    }  # fmt: skip
    assert result.skipped[site.url("/private/p")] == "robots"
    assert result.skipped[site.url("/dup2")] == "duplicate"
    assert result.skipped[site.url("/alias")] == "duplicate"
    assert result.skipped[site.url("/app")] == "empty: javascript_only"
    assert "/private/p" not in site.paths() and "/logo.png" not in site.paths()
    pdf = next(p for p in result.pages if p.url.endswith(".pdf"))
    assert pdf.result.kind == "document" and pdf.extracted is None
    home = next(p for p in result.pages if p.depth == 0)
    assert home.extracted is not None and home.extracted.title == "Home"


def test_depth_limit(site: SiteServer) -> None:
    assert paths(crawl(site, max_depth=0)) == {""}
    shallow = paths(crawl(site, max_depth=1))
    assert "a" in shallow and "a/deep" not in shallow and "docs/3" not in shallow
    assert "/a/deep" not in site.paths()
    assert "a/deep" in paths(crawl(site, max_depth=2))


def test_page_limit(site: SiteServer) -> None:
    result = crawl(site, max_pages=3)
    assert len(result.pages) == 3 and result.truncated


def test_include_and_exclude_patterns(site: SiteServer) -> None:
    docs = crawl(site, include=["/docs/*"])
    assert paths(docs) == {"docs/1", "docs/2", "docs/3"}  # the start page is not one of them
    assert "/a" not in site.paths()
    site.requests.clear()
    no_two = crawl(site, include=["/docs/*"], exclude=["re:/docs/2$"])
    assert paths(no_two) == {"docs/1", "docs/3"}
    assert "/docs/2" not in site.paths()


def test_two_crawls_of_the_same_site_share_no_state(site: SiteServer) -> None:
    async def both() -> list[CrawlResult]:
        async def one() -> CrawlResult:
            async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
                return await discover(site.url("/"), 100, 3, (), (), fetcher)

        return list(await asyncio.gather(one(), one()))

    first, second = run(both())
    third = crawl(site)
    assert paths(first) == paths(second) == paths(third)
    assert len(first.pages) == 10
    assert site.paths().count("/robots.txt") == 3  # robots.txt fetched once per crawl


def test_urls_are_normalised() -> None:
    assert normalize_url("HTTP://Example.COM:80") == "http://example.com/"
    assert (
        normalize_url("/p?b=2&utm_source=x&a=1&fbclid=y#frag", "https://example.com/x/")
        == "https://example.com/p?b=2&a=1"
    )
    assert normalize_url("https://example.com:8443/p") == "https://example.com:8443/p"
    assert normalize_url("mailto:a@example.com") is None
    assert normalize_url("http://[::1]:8000/") == "http://[::1]:8000/"


def test_patterns_are_globs_on_the_path_or_regexes_on_the_url() -> None:
    (glob,) = compile_patterns(["/docs/*"])
    (full,) = compile_patterns(["https://example.com/blog/*"])
    (regex,) = compile_patterns([r"re:/v\d+/"])
    assert glob("https://example.com/docs/a/b") and not glob("https://example.com/blog/docs/a")
    assert full("https://example.com/blog/1") and not full("http://example.com/blog/1")
    assert regex("https://example.com/api/v2/x") and not regex("https://example.com/api/vx/")


def test_links_honour_the_base_element() -> None:
    html = '<html><head><base href="https://example.com/docs/"></head><a href="x">x</a></html>'
    assert page_links(html, "https://example.com/") == ["https://example.com/docs/x"]
