"""Web sources end to end (tasks in-process, a real local site): sitemap ingestion,
conditional re-syncs that re-embed nothing, removed pages leaving the index, the SSRF
guard at creation, crawl limits per tenant, cancellation and the beat schedule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from chatbot.services import create_api_key
from knowledge import index, services
from knowledge.embedding import LocalMiniLMEmbedder
from knowledge.models import Chunk, Document, KnowledgeBase, Source
from tests.conftest import HOST_A
from tests.knowledge.webfixtures.server import Route, SiteServer

PAGES = {
    "/intro": ("Introduction", "Parley answers questions from your own documents."),
    "/install": ("Installing", "Run make run; it starts PostgreSQL, Redis and Chroma for you."),
    "/faq": ("FAQ", "Refunds are possible within thirty days of the purchase."),
}


def html(title: str, text: str, extra: str = "") -> str:
    return (
        f"<html><head><title>{title}</title></head><body><nav>Home | Docs | Blog</nav>"
        f"<main><h1>{title}</h1><p>{text}</p><p>{text} More words make a real paragraph "
        f"about {title.lower()} for the readers of this site.</p>{extra}</main>"
        "<footer>Copyright Example</footer></body></html>"
    )


def with_etag(body: str, etag: str):  # type: ignore[no-untyped-def]
    def route(headers: dict[str, str]) -> Route:
        if headers.get("if-none-match") == etag:
            return Route(b"", status=304, headers={"ETag": etag})
        return Route(body, headers={"ETag": etag})

    return route


@pytest.fixture
def site(settings) -> Iterator[SiteServer]:
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = "127.0.0.0/8"
    settings.PARLEY_FETCH_HOST_DELAY = 0.0
    with SiteServer() as server:
        for path, (title, text) in PAGES.items():
            extra = (
                '<figure><img src="/img/a.png" alt="A diagram"><figcaption>How it works'
                "</figcaption></figure>"
                if path == "/intro"
                else ""
            )
            server.routes[path] = with_etag(html(title, text, extra), f'"{path}-v1"')
        server.routes["/robots.txt"] = Route(
            "User-agent: *\nDisallow: /secret\n", content_type="text/plain"
        )
        server.routes["/sitemap.xml"] = lambda headers: Route(
            sitemap(server), content_type="application/xml"
        )
        yield server


def sitemap(server: SiteServer) -> str:
    urls = "".join(f"<url><loc>{server.url(p)}</loc></url>" for p in server.listed)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


@pytest.fixture
def listed(site: SiteServer) -> list[str]:
    site.listed = [*PAGES, "/secret"]  # type: ignore[attr-defined]
    site.routes["/secret"] = Route(html("Secret", "Never to be fetched."))
    return site.listed  # type: ignore[attr-defined]


@pytest.fixture
def embed_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = LocalMiniLMEmbedder.embed_documents

    def counting(self, texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(LocalMiniLMEmbedder, "embed_documents", counting)
    return calls


def add_sitemap(run_on_commit, kb: KnowledgeBase, site: SiteServer) -> Source:  # type: ignore[no-untyped-def]
    source = run_on_commit(
        services.add_web_source, kb, "sitemap", {"url": site.url("/sitemap.xml")}
    )
    source.refresh_from_db()
    return source


def test_a_sitemap_is_ingested_politely(kb_a, run_on_commit, site, listed):
    source = add_sitemap(run_on_commit, kb_a, site)
    assert source.status == Source.Status.READY, source.error
    docs = {d.ref.removeprefix(site.base): d for d in source.documents.all()}
    assert set(docs) == set(PAGES)  # /secret is disallowed by robots.txt
    assert "/secret" not in site.paths()
    assert all(d.status == "ready" and d.chunk_count > 0 for d in docs.values())
    assert docs["/install"].title == "Installing"
    texts = " ".join(Chunk.objects.filter(document__source=source).values_list("text", flat=True))
    assert "Redis and Chroma" in texts and "Copyright Example" not in texts
    assert docs["/intro"].metadata["images"] == [
        {"url": site.url("/img/a.png"), "alt": "A diagram", "caption": "How it works"}
    ]
    assert (source.documents_fetched, source.documents_indexed) == (3, 3)
    assert all("parleybot" in r.headers.get("user-agent", "").lower() for r in site.requests)


def test_an_unchanged_resync_re_embeds_nothing(kb_a, run_on_commit, site, listed, embed_calls):
    source = add_sitemap(run_on_commit, kb_a, site)
    ids = set(Chunk.objects.filter(document__source=source).values_list("id", flat=True))
    embedded_first = sum(embed_calls)
    run_on_commit(services.sync_source, source)
    source.refresh_from_db()
    assert sum(embed_calls) == embedded_first  # nothing re-embedded
    assert (source.documents_unchanged, source.documents_indexed) == (3, 0)
    assert any(r.headers.get("if-none-match") for r in site.requests)  # conditional requests
    assert set(Chunk.objects.filter(document__source=source).values_list("id", flat=True)) == ids


def test_a_changed_page_alone_is_re_embedded(kb_a, run_on_commit, site, listed, embed_calls):
    source = add_sitemap(run_on_commit, kb_a, site)
    site.routes["/faq"] = with_etag(html("FAQ", "Refunds are possible within sixty days."), '"v2"')
    before = len(embed_calls)
    run_on_commit(services.sync_source, source)
    source.refresh_from_db()
    assert (source.documents_indexed, source.documents_unchanged) == (1, 2)
    assert len(embed_calls) == before + 1
    results = services.search(kb_a, "how long can I ask for a refund")
    assert "sixty days" in results[0]["text"]


def test_removed_pages_leave_the_index(kb_a, run_on_commit, site, listed):
    source = add_sitemap(run_on_commit, kb_a, site)
    gone_404 = set(
        Chunk.objects.filter(document__ref=site.url("/faq")).values_list("id", flat=True)
    )
    gone_unlisted = set(
        Chunk.objects.filter(document__ref=site.url("/install")).values_list("id", flat=True)
    )
    del site.routes["/faq"]  # now 404
    site.listed.remove("/install")  # type: ignore[attr-defined]
    site.listed.append("/faq")  # type: ignore[attr-defined]
    run_on_commit(services.sync_source, source)
    source.refresh_from_db()
    assert sorted(d.ref.removeprefix(site.base) for d in source.documents.all()) == ["/intro"]
    assert source.documents_removed == 2
    vectors = set(index.all_ids(kb_a.collection_name))
    assert not (gone_404 | gone_unlisted) & vectors
    assert not Chunk.objects.filter(id__in=gone_404 | gone_unlisted).exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://localhost:8000/",
        "file:///etc/passwd",
    ],
)
def test_hostile_urls_are_refused_at_creation(kb_a, url, settings):
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = ""
    with pytest.raises(ValidationError) as caught:
        services.add_web_source(kb_a, "url", {"url": url})
    assert caught.value.message_dict["url"][0].startswith(url.split("/latest")[0][:10])
    assert not Source.objects.exists()


def test_the_api_refuses_a_metadata_address_with_a_clear_400(kb_a, client):
    _, raw = create_api_key("web")
    response = client.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/sources/",
        {"kind": "sitemap", "url": "http://169.254.169.254/sitemap.xml", "max_pages": 10},
        content_type="application/json",
        HTTP_HOST=HOST_A,
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 400
    assert "169.254.169.254" in response.json()["error"]["details"]["url"][0]


def test_a_crawl_through_the_api_respects_its_limits(kb_a, run_on_commit, client, site, listed):
    site.routes["/"] = Route(
        html(
            "Home",
            "Start here.",
            '<a href="/intro">i</a><a href="/install">n</a><a href="/faq">f</a>',
        )
    )
    _, raw = create_api_key("web")
    with_commit = run_on_commit(
        client.post,
        f"/api/v1/knowledge-bases/{kb_a.pk}/sources/",
        {"kind": "crawl", "url": site.url("/"), "max_pages": 2, "max_depth": 1,
         "exclude": ["/faq"]},
        content_type="application/json",
        HTTP_HOST=HOST_A,
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )  # fmt: skip
    assert with_commit.status_code == 201, with_commit.content
    source = Source.objects.get(pk=with_commit.json()["id"])
    refs = [d.ref.removeprefix(site.base) for d in source.documents.all()]
    assert len(refs) == 2 and "/faq" not in refs
    detail = client.get(
        f"/api/v1/sources/{source.pk}/documents/", HTTP_HOST=HOST_A,
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    ).json()  # fmt: skip
    assert {"outcome", "metadata", "fetched_at"} <= set(detail["results"][0])


def test_two_tenants_crawl_the_same_site_independently(
    kb_a, run_on_commit, site, listed, tenant_a, tenant_b, drop_collections
):
    site.routes["/"] = Route(html("Home", "Start.", '<a href="/intro">i</a><a href="/faq">f</a>'))
    crawl = {"url": site.url("/"), "max_pages": 10, "max_depth": 1}
    a = run_on_commit(services.add_web_source, kb_a, "crawl", crawl)
    connection.set_tenant(tenant_b)
    kb_b = KnowledgeBase.objects.create(name="B's site")
    drop_collections.append(kb_b.collection_name)
    b = run_on_commit(services.add_web_source, kb_b, "crawl", crawl)
    b_refs = sorted(Document.objects.filter(source=b).values_list("ref", flat=True))
    connection.set_tenant(tenant_a)
    a_refs = sorted(Document.objects.filter(source=a).values_list("ref", flat=True))
    # Each crawl saw every page: no "already visited" state leaked from one to the other.
    assert a_refs == b_refs and len(a_refs) == 3


def test_a_cancelled_sync_stops_and_says_so(kb_a, site, listed, eager_tasks):
    source = services.add_web_source(kb_a, "sitemap", {"url": site.url("/sitemap.xml")})
    assert services.cancel(source)  # pending: the on-commit task has not run yet
    from knowledge.tasks import ingest_source

    ingest_source.apply(args=[source.pk])
    source.refresh_from_db()
    assert source.status == Source.Status.CANCELLED
    assert not Chunk.objects.filter(document__source=source).exists()
    assert services.cancel(source) is False  # nothing left to cancel


def test_beat_queues_the_sources_that_are_due(kb_a, site, listed, monkeypatch):
    from knowledge import tasks

    def url_source(path: str, schedule: str = "off") -> Source:
        return Source.objects.create(
            knowledge_base=kb_a, kind="url", config={"url": site.url(path)},
            schedule=schedule, status="ready",
        )  # fmt: skip

    daily, weekly, off = (
        url_source("/faq", "daily"),
        url_source("/intro", "weekly"),
        url_source("/x"),
    )
    two_days_ago = timezone.now() - timedelta(days=2)
    Source.objects.filter(pk__in=[daily.pk, weekly.pk, off.pk]).update(last_synced_at=two_days_ago)
    queued: list[int] = []
    monkeypatch.setattr(services, "start_ingest", lambda source: queued.append(source.pk))
    connection.set_schema_to_public()
    assert tasks.sync_due_sources() == 1
    assert queued == [daily.pk]


def test_duplicate_pages_are_indexed_once(kb_a, run_on_commit, site):
    same = html("Pricing", "The starter plan costs ten euros a month.")
    site.routes["/pricing"] = Route(same)
    site.routes["/pricing-copy"] = Route(same)
    site.routes["/old-pricing"] = Route(
        html("Old pricing", "Prices of last year, kept for reference.").replace(
            "<head>", f'<head><link rel="canonical" href="{site.url("/pricing")}">'
        )
    )
    urls = [site.url(p) for p in ("/pricing", "/pricing-copy", "/old-pricing")]
    source = run_on_commit(services.add_web_source, kb_a, "urls", {"urls": urls})
    docs = {d.ref.removeprefix(site.base): d for d in source.documents.all()}
    assert docs["/pricing"].status == Document.Status.READY
    for copy in ("/pricing-copy", "/old-pricing"):
        assert docs[copy].status == Document.Status.EMPTY
        assert docs[copy].error.startswith(f"Same content as {site.url('/pricing')}")
        assert docs[copy].chunk_count == 0
    assert Chunk.objects.filter(document__source=source).count() == docs["/pricing"].chunk_count
