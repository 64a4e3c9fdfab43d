"""The fetcher: guarded hops, limits, robots.txt, politeness and conditional requests."""

from __future__ import annotations

import gzip
import itertools
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from knowledge.web.fetcher import Fetcher, FetchLimits, PinnedTransport, fetch_sync
from tests.knowledge.webfixtures.helpers import FAST, LOCAL, fake_dns, run
from tests.knowledge.webfixtures.server import Route, SiteServer

PAGE = "<html><head><title>Hi</title></head><body><p>Hello there.</p></body></html>"


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        server.routes["/robots.txt"] = Route("User-agent: *\nAllow: /\n", content_type="text/plain")
        server.routes["/"] = Route(PAGE)
        yield server


def fetch(url: str, limits: FetchLimits = FAST, **options):  # type: ignore[no-untyped-def]
    fetcher_options = {"allowed_networks": options.pop("allowed_networks", LOCAL)}

    async def go():  # type: ignore[no-untyped-def]
        async with Fetcher(limits=limits, **fetcher_options) as fetcher:
            return await fetcher.fetch(url, **options)

    return run(go())


def test_it_fetches_a_page_with_its_user_agent_and_canonical_url(site: SiteServer) -> None:
    site.routes["/a"] = Route(
        '<html><head><link rel="canonical" href="/a-canonical#top"></head><body>x</body></html>'
    )
    result = fetch(site.url("/a"))
    assert result.ok and result.kind == "html" and b"<body>x" in result.body
    assert result.canonical_url == site.url("/a-canonical")
    user_agent = site.requests[-1].headers["user-agent"]
    assert user_agent.startswith("ParleyBot/") and "+https://github.com/parley" in user_agent


def test_a_canonical_url_on_another_host_is_ignored(site: SiteServer) -> None:
    site.routes["/a"] = Route('<link rel="canonical" href="https://elsewhere.example/a"><p>x</p>')
    assert fetch(site.url("/a")).canonical_url is None


def test_loopback_is_refused_unless_allowed(site: SiteServer) -> None:
    result = fetch(site.url("/"), allowed_networks=[])
    assert result.blocked and "loopback" in (result.error or "")
    assert site.requests == []


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/"],
)
def test_a_redirect_to_a_private_address_is_refused(site: SiteServer, target: str) -> None:
    site.routes["/go"] = Route(status=302, headers={"Location": target.format(port=site.port)})
    result = fetch(site.url("/go"), allowed_networks=["127.0.0.1/32"])
    assert result.blocked and not result.ok
    assert "Refused to fetch" in (result.error or "")
    assert site.paths() == ["/robots.txt", "/go"]


def test_redirects_are_followed_up_to_the_limit(site: SiteServer) -> None:
    for hop in range(4):
        site.routes[f"/r{hop}"] = Route(status=301, headers={"Location": f"/r{hop + 1}"})
    site.routes["/r4"] = Route(PAGE)
    result = fetch(site.url("/r0"))
    assert result.ok and result.final_url == site.url("/r4") and len(result.redirects) == 4
    too_few = FetchLimits(host_delay=0, max_redirects=2)
    assert "Too many redirects" in (fetch(site.url("/r0"), too_few).error or "")


def test_the_body_size_limit_aborts_the_download(site: SiteServer) -> None:
    limits = FetchLimits(host_delay=0, max_bytes=10_000)
    site.routes["/big"] = Route("x" * 20_000)
    assert "larger than" in (fetch(site.url("/big"), limits).error or "")
    # A small gzip body that inflates past the limit: caught while streaming.
    bomb = gzip.compress(b"<p>" + b"a" * 1_000_000)
    site.routes["/bomb"] = Route(bomb, headers={"Content-Encoding": "gzip"})
    result = fetch(site.url("/bomb"), limits)
    assert "larger than" in (result.error or "") and result.body == b""


def test_conditional_requests_report_unchanged_pages(site: SiteServer) -> None:
    def conditional(headers: dict[str, str]) -> Route:
        if headers.get("if-none-match") == '"v1"' or headers.get("if-modified-since"):
            return Route(status=304, headers={"ETag": '"v1"'})
        return Route(
            PAGE, headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        )

    site.routes["/c"] = conditional
    first = fetch(site.url("/c"))
    assert first.ok and first.etag == '"v1"' and first.last_modified
    again = fetch(site.url("/c"), etag=first.etag)
    assert again.unchanged and not again.ok and again.body == b""
    by_date = fetch(site.url("/c"), last_modified=first.last_modified)
    assert by_date.unchanged


@pytest.mark.parametrize("status", [404, 410])
def test_pages_that_disappeared_are_reported_gone(site: SiteServer, status: int) -> None:
    site.routes["/old"] = Route("gone", status=status)
    result = fetch(site.url("/old"))
    assert result.gone and result.status == status and not result.ok


def test_content_types_are_checked(site: SiteServer) -> None:
    site.routes["/logo.png"] = Route(b"\x89PNG", content_type="image/png")
    site.routes["/guide.pdf"] = Route(b"%PDF-1.7 ...", content_type="application/pdf")
    site.routes["/sheet.xlsx"] = Route(b"PK\x03\x04", content_type="application/octet-stream")
    assert "Unsupported content type 'image/png'" in (fetch(site.url("/logo.png")).error or "")
    pdf = fetch(site.url("/guide.pdf"))
    assert pdf.ok and pdf.kind == "document" and pdf.body.startswith(b"%PDF")
    sheet = fetch(site.url("/sheet.xlsx"))
    assert sheet.kind == "document" and sheet.filename == "sheet.xlsx"
    assert sheet.content_type.endswith("spreadsheetml.sheet")


def test_robots_disallow_is_honoured_and_robots_is_fetched_once(site: SiteServer) -> None:
    site.routes["/robots.txt"] = Route(
        "User-agent: *\nDisallow: /\n\nUser-agent: ParleyBot\nDisallow: /private/\n",
        content_type="text/plain",
    )
    site.routes["/private/x"] = Route(PAGE)

    async def go():  # type: ignore[no-untyped-def]
        async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
            return [await fetcher.fetch(site.url(p)) for p in ("/", "/private/x", "/")]

    public, private, _ = run(go())
    assert public.ok
    assert private.disallowed and "robots.txt disallows" in (private.error or "")
    assert site.paths() == ["/robots.txt", "/", "/"]


def test_an_unreachable_robots_txt_means_disallow_all(site: SiteServer) -> None:
    site.routes["/robots.txt"] = Route("oops", status=503)
    assert fetch(site.url("/")).disallowed
    site.routes["/robots.txt"] = Route("nothing", status=404)
    assert fetch(site.url("/")).ok


def test_crawl_delay_spaces_requests_to_a_host(site: SiteServer) -> None:
    site.routes["/robots.txt"] = Route(
        "User-agent: *\nCrawl-delay: 0.4\n", content_type="text/plain"
    )

    async def go():  # type: ignore[no-untyped-def]
        async with Fetcher(allowed_networks=LOCAL, limits=FAST) as fetcher:
            for _ in range(3):
                await fetcher.fetch(site.url("/"))

    run(go())
    times = [seen.at for seen in site.requests if seen.path == "/"]
    assert len(times) == 3
    assert all(later - earlier >= 0.35 for earlier, later in itertools.pairwise(times))
    capped = FetchLimits(host_delay=0, max_crawl_delay=0.05)
    site.routes["/robots.txt"] = Route(
        "User-agent: *\nCrawl-delay: 60\n", content_type="text/plain"
    )
    started = time.monotonic()
    run(_fetch_many(site, capped, 3))
    assert time.monotonic() - started < 5


async def _fetch_many(site: SiteServer, limits: FetchLimits, count: int) -> None:
    async with Fetcher(allowed_networks=LOCAL, limits=limits) as fetcher:
        for _ in range(count):
            await fetcher.fetch(site.url("/"))


def test_concurrency_per_host_is_limited(site: SiteServer) -> None:
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow(headers: dict[str, str]) -> Route:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return Route(PAGE)

    site.routes["/slow"] = slow

    async def go():  # type: ignore[no-untyped-def]
        import asyncio

        limits = FetchLimits(host_delay=0, host_concurrency=2)
        async with Fetcher(allowed_networks=LOCAL, limits=limits) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(site.url("/slow")) for _ in range(6)))

    assert all(result.ok for result in run(go()))
    assert state["peak"] == 2


def test_the_connection_is_pinned_to_the_vetted_address(
    site: SiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: the first answer passes the guard, every later one is the metadata address.
    answers = iter([["127.0.0.1"]])
    asked = fake_dns(
        monkeypatch,
        lambda host: next(answers, ["169.254.169.254"]) if host == "rebind.test" else None,
    )
    url = f"http://rebind.test:{site.port}/"
    result = fetch(url, check_robots=False)
    assert result.ok, result.error
    assert asked == ["rebind.test"]  # connecting did not resolve the name again
    assert site.requests[-1].headers["host"] == f"rebind.test:{site.port}"
    again = fetch(url, check_robots=False)
    assert again.blocked and "cloud metadata" in (again.error or "")


def test_every_vetted_address_is_tried_in_turn(
    site: SiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server listens on 127.0.0.1 only; ::1 is refused, and the next vetted address works.
    fake_dns(monkeypatch, lambda host: ["::1", "127.0.0.1"] if host == "dual.test" else None)
    result = fetch(f"http://dual.test:{site.port}/", check_robots=False)
    assert result.ok, result.error


def test_the_transport_refuses_hosts_that_were_never_vetted(site: SiteServer) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=PinnedTransport({})) as client:
            await client.get(site.url("/"))

    with pytest.raises(httpx.ConnectError, match="not checked by the SSRF guard"):
        run(go())
    assert site.requests == []


def test_fetch_sync_works_from_synchronous_code(site: SiteServer) -> None:
    result = fetch_sync(site.url("/"), allowed_networks=LOCAL, limits=FAST)
    assert result.ok and result.status == 200
