"""Web sources (url, urls, sitemap, crawl): the fetch phase of a sync.

One task per sync fetches every page of the source with one polite `Fetcher` (per-host
concurrency and delay, robots.txt, SSRF guard, conditional requests), batch by batch, and
stores each new body on its document; `process_document` then extracts, chunks and embeds
it like any file. Unchanged pages (304, or the same extracted text) re-embed nothing;
pages gone (404/410, or no longer listed) leave the index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from knowledge.models import Document, Source
from knowledge.web.crawl import CrawledPage, Crawler
from knowledge.web.fetcher import Fetcher, FetchResult
from knowledge.web.sitemap import SitemapLimits, read_sitemaps

BATCH = 16
DEFAULT_MAX_PAGES = 500
MAX_PAGES = 50_000


def page_limit(source: Source) -> int:
    return max(1, min(int(source.config.get("max_pages") or DEFAULT_MAX_PAGES), MAX_PAGES))


def sync(source: Source) -> list[int]:
    """Fetch the source's pages; returns the ids of documents with a new body to process.

    The fetching is async (one `Fetcher`: shared per-host limits and robots.txt), driven
    batch by batch from this synchronous task with an `asyncio.Runner`, so that the database
    work between batches runs here, on the task's own connection and tenant schema.
    """
    Document.objects.filter(source=source).update(outcome=Document.Outcome.NONE)
    Source.objects.filter(pk=source.pk).update(
        documents_fetched=0, documents_indexed=0, documents_unchanged=0, documents_removed=0
    )
    store = Store(source)
    with asyncio.Runner() as runner:
        fetcher = Fetcher()
        runner.run(fetcher.__aenter__())
        try:
            if source.kind == Source.Kind.CRAWL:
                _crawl(source, store, runner, fetcher)
            else:
                _fetch_listed(source, store, runner, fetcher)
        finally:
            runner.run(fetcher.__aexit__(None, None, None))
    if not store.cancelled and not store.listing_failed:
        store.remove_unlisted()
    return store.to_process


def _crawl(source: Source, store: Store, runner: asyncio.Runner, fetcher: Fetcher) -> None:
    config = source.config
    crawler = Crawler(
        config["url"],
        fetcher,
        max_pages=page_limit(source),
        max_depth=int(config.get("max_depth", 3)),
        include=config.get("include") or (),
        exclude=config.get("exclude") or (),
    )
    while (pages := runner.run(crawler.next_batch())) is not None:
        store.save_crawled(pages)
        if store.is_cancelled():
            store.cancelled = True
            return
    if not crawler.result.pages:
        store.listing_failed = True
        store.note(_first_skip(crawler.result.skipped) or "The crawl found no pages.")


def _fetch_listed(source: Source, store: Store, runner: asyncio.Runner, fetcher: Fetcher) -> None:
    urls = runner.run(_listed_urls(source, fetcher, store))
    if store.errors:  # noted here: the ORM cannot run inside the event loop
        store.note("; ".join(store.errors))
    known = store.validators(urls)
    for start in range(0, len(urls), BATCH):
        if store.is_cancelled():
            store.cancelled = True
            return
        batch = urls[start : start + BATCH]
        results = runner.run(_fetch_all(fetcher, batch, known))
        store.save_fetched(results)


async def _fetch_all(
    fetcher: Fetcher, urls: list[str], known: dict[str, dict[str, str]]
) -> list[FetchResult]:
    return list(
        await asyncio.gather(
            *(fetcher.fetch(url, accept="any", **known.get(url, {})) for url in urls)  # type: ignore[arg-type]
        )
    )


async def _listed_urls(source: Source, fetcher: Fetcher, store: Store) -> list[str]:
    config = source.config
    if source.kind == Source.Kind.URL:
        urls = [config["url"]]
    elif source.kind == Source.Kind.URLS:
        urls = list(dict.fromkeys(config["urls"]))
    else:
        result = await read_sitemaps(
            [config["url"]], fetcher, limits=SitemapLimits(max_urls=page_limit(source))
        )
        urls = result.urls
        if not urls:
            store.listing_failed = True
            store.errors.append("; ".join(result.errors) or "The sitemap lists no pages.")
    urls = urls[: page_limit(source)]
    store.listed.update(urls)
    return urls


def _first_skip(skipped: dict[str, str]) -> str:
    for url, reason in skipped.items():
        return f"{url}: {reason}"
    return ""


class Store:
    """The database side of a sync, between fetch batches."""

    def __init__(self, source: Source) -> None:
        self.source_id = source.pk
        self.listed: set[str] = set()
        self.to_process: list[int] = []
        self.errors: list[str] = []
        self.cancelled = False
        self.listing_failed = False

    def is_cancelled(self) -> bool:
        return Source.objects.filter(pk=self.source_id, cancel_requested=True).exists()

    def note(self, message: str) -> None:
        Source.objects.filter(pk=self.source_id).update(error=message[:2000])

    def validators(self, urls: Iterable[str]) -> dict[str, dict[str, str]]:
        """ETag / Last-Modified of pages indexed before, for conditional requests."""
        docs = Document.objects.filter(
            source_id=self.source_id, ref__in=list(urls), status=Document.Status.READY
        ).values_list("ref", "etag", "last_modified")
        return {
            ref: {k: v for k, v in (("etag", etag), ("last_modified", lm)) if v}
            for ref, etag, lm in docs
        }

    def save_fetched(self, results: list[FetchResult]) -> None:
        for result in results:
            self._save(result.url, result)

    def save_crawled(self, pages: list[CrawledPage]) -> None:
        for page in pages:
            self.listed.add(page.url)
            self._save(page.url, page.result)
            page.result.body = b""  # stored: do not keep every page in memory

    def _save(self, url: str, result: FetchResult) -> None:
        from knowledge.pipeline import delete_document

        doc = Document.objects.filter(source_id=self.source_id, ref=url).defer("raw_body").first()
        if result.gone:
            if doc is not None:
                delete_document(doc)
                _bump(self.source_id, "documents_removed")
            return
        if doc is None:
            doc = Document(source_id=self.source_id, ref=url, url=url, title=url[:500])
        doc.fetched_at = timezone.now()
        if result.unchanged:
            doc.outcome = Document.Outcome.UNCHANGED
            doc.save()
            _bump(self.source_id, "documents_fetched")
            return
        if not result.ok:
            doc.status = Document.Status.FAILED
            doc.outcome = Document.Outcome.FAILED
            doc.error = result.error or f"HTTP {result.status}"
            doc.save()
            _bump(self.source_id, "documents_fetched")
            return
        doc.url = result.final_url
        doc.raw_body = result.body
        doc.raw_content_type = result.content_type
        doc.etag = result.etag or ""
        doc.last_modified = result.last_modified or ""
        doc.metadata = {
            **doc.metadata,
            "filename": result.filename,
            "canonical_url": result.canonical_url or "",
        }
        if doc.status != Document.Status.READY:
            doc.status = Document.Status.PENDING
        doc.save()
        _bump(self.source_id, "documents_fetched")
        self.to_process.append(doc.pk)

    def remove_unlisted(self) -> None:
        """Pages no longer in the sitemap, the list or the crawl leave the index."""
        from knowledge.pipeline import delete_document

        stale = Document.objects.filter(source_id=self.source_id).exclude(ref__in=self.listed)
        for doc in stale.defer("raw_body"):
            delete_document(doc)
            _bump(self.source_id, "documents_removed")


def _bump(source_id: int, *fields: str) -> None:
    from django.db.models import F

    Source.objects.filter(pk=source_id).update(**{name: F(name) + 1 for name in fields})


def web_config(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validated configuration of a new web source (raises ValueError with a message)."""
    from knowledge.web.ssrf import BlockedURL, check_url

    def checked(url: Any) -> str:
        if not isinstance(url, str) or not url.strip():
            raise ValueError("A URL is required.")
        url = url.strip()
        try:
            check_url(url)
        except BlockedURL as exc:
            raise ValueError(f"{url}: {exc}") from None
        return url

    config: dict[str, Any] = {}
    if kind == Source.Kind.URLS:
        urls = data.get("urls")
        if not isinstance(urls, list) or not urls:
            raise ValueError("A urls source needs a non-empty list of URLs.")
        if len(urls) > MAX_PAGES:
            raise ValueError(f"At most {MAX_PAGES} URLs.")
        config["urls"] = [checked(url) for url in urls]
    else:
        config["url"] = checked(data.get("url"))
    for name, low, high in (("max_pages", 1, MAX_PAGES), ("max_depth", 0, 20)):
        if data.get(name) is not None:
            try:
                value = int(data[name])
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be an integer.") from None
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}.")
            config[name] = value
    for name in ("include", "exclude"):
        patterns = data.get(name) or []
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ValueError(f"{name} must be a list of patterns.")
        if patterns:
            from knowledge.web.crawl import compile_patterns

            try:
                compile_patterns(patterns)
            except Exception as exc:  # noqa: BLE001 - a bad regex, said plainly
                raise ValueError(f"{name}: invalid pattern: {exc}") from None
            config[name] = patterns
    return config
