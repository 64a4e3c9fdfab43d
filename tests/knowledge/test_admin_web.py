"""The knowledge console for web sources: the "Add website" form (and its SSRF refusals),
"Sync now" and "Cancel", the editable schedule, the sync counters in the progress bar, each
page's outcome and error, and a page's URL, validators and images on its document page.

Like test_admin, no worker: ingestion is queued on commit, which never fires in a test's
transaction. The SSRF guard runs for real, so sources point at 127.0.0.1 with loopback
allowed (this machine has no public DNS: any other name is refused as unresolvable)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from knowledge.models import Document, KnowledgeBase, Source
from tests.knowledge.test_admin import (
    DOCUMENT_URL,
    KB_URL,
    PROGRESS_URL,
    SOURCE_URL,
    XSS,
    make_document,
    make_source,
    messages_of,
)

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture
def kb(alice_client, kb_a, tenant_a) -> KnowledgeBase:
    connection.set_tenant(tenant_a)  # alice_client's login leaves the connection on public
    return kb_a


@pytest.fixture
def local_web(settings):
    """The SSRF guard refuses loopback unless its network is allowed, as a deployment
    crawling an intranet would allow its own."""
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = "127.0.0.0/8"


def make_web_source(kb: KnowledgeBase, kind: str = "crawl", **fields) -> Source:
    config = {"urls": [f"{LOCAL}/a"]} if kind == "urls" else {"url": f"{LOCAL}/docs/"}
    fields.setdefault("title", "Docs site")
    return Source.objects.create(knowledge_base=kb, kind=kind, config=config, **fields)


def website_form(**changes) -> dict[str, str]:
    data = {
        "kind": "url",
        "url": "",
        "urls": "",
        "max_pages": "",
        "max_depth": "",
        "include": "",
        "exclude": "",
        "schedule": "off",
        "title": "",
    }
    return {**data, **changes}


def test_add_website_is_a_tab_with_every_kind_and_the_pattern_syntax(alice_client, kb):
    page = alice_client.get(f"{KB_URL}{kb.pk}/add-website/").content.decode()
    assert f'href="{KB_URL}{kb.pk}/add-qa/"' in page
    assert 'class="current" aria-current="page">Add website</a>' in page
    for kind in ("url", "urls", "sitemap", "crawl"):
        assert f'value="{kind}"' in page
    for name in ("url", "max_pages", "max_depth", "include", "exclude", "title"):
        assert f'name="{name}"' in page
    assert '<textarea name="urls"' in page and '<select name="schedule"' in page
    assert "re:" in page and "glob" in page  # the include/exclude syntax is explained
    assert 'data-web-kinds="crawl"' in page  # knowledge-admin.js hides what does not apply


def test_a_crawl_is_added_with_its_limits_patterns_and_schedule(alice_client, kb, local_web):
    data = website_form(
        kind="crawl",
        url=f"{LOCAL}/docs/",
        max_pages="50",
        max_depth="2",
        include="/docs/*\r\n\r\nre:/blog/\\d{4}/\r\n",
        exclude="*?print=1",
        schedule="weekly",
        title="Product docs",
    )
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-website/", data, follow=True)
    source = Source.objects.get(knowledge_base=kb)
    assert response.redirect_chain == [(f"{SOURCE_URL}{source.pk}/change/", 302)]
    assert messages_of(response) == ["Product docs: queued"]
    assert (source.kind, source.title, source.schedule, source.status) == (
        "crawl",
        "Product docs",
        "weekly",
        "pending",
    )
    assert source.config == {
        "url": f"{LOCAL}/docs/",
        "max_pages": 50,
        "max_depth": 2,
        "include": ["/docs/*", r"re:/blog/\d{4}/"],
        "exclude": ["*?print=1"],
    }


def test_a_list_of_urls_is_read_one_per_line(alice_client, kb, local_web):
    data = website_form(
        kind="urls",
        urls=f"{LOCAL}/a\n\n  {LOCAL}/b  \n",
        url=f"{LOCAL}/typed-before-switching",
        max_depth="4",  # crawl only: dropped
        include="/x/*",
    )
    assert alice_client.post(f"{KB_URL}{kb.pk}/add-website/", data).status_code == 302
    source = Source.objects.get(knowledge_base=kb)
    assert source.kind == "urls" and source.title == "2 pages"
    assert source.config == {"urls": [f"{LOCAL}/a", f"{LOCAL}/b"]}


def test_the_add_website_form_refuses_a_metadata_address(alice_client, kb, settings):
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = ""
    data = website_form(kind="sitemap", url="http://169.254.169.254/")
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-website/", data)
    assert response.status_code == 200
    (error,) = response.context["form"].errors["url"]
    assert "169.254.169.254 is a cloud metadata address" in error
    assert "169.254.169.254 is a cloud metadata address" in response.content.decode()
    assert not Source.objects.exists()


def test_an_unresolvable_or_private_url_in_a_list_is_shown_on_the_list(alice_client, kb):
    # No public DNS here: an unresolvable name is refused like a private address would be.
    data = website_form(kind="urls", urls="http://10.0.0.5/\nhttp://intranet.invalid/")
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-website/", data)
    (error,) = response.context["form"].errors["urls"]
    assert error.startswith("http://10.0.0.5/: Refused to fetch")
    assert not Source.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"kind": "crawl"}, "url", "This field is required."),
        ({"kind": "urls", "urls": " \n "}, "urls", "Give at least one URL, one per line."),
        ({"kind": "crawl", "url": f"{LOCAL}/", "max_depth": "99"}, "max_depth", "less than"),
        ({"kind": "crawl", "url": f"{LOCAL}/", "include": "re:(unclosed"}, "include", "invalid"),
        ({"kind": "url", "url": f"{LOCAL}/", "schedule": "hourly"}, "schedule", "valid choice"),
    ],
)
def test_bad_website_input_is_shown_on_its_field(
    alice_client, kb, local_web, changes, field, error
):
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-website/", website_form(**changes))
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors[field])
    assert not Source.objects.exists()


def test_charlie_cannot_add_a_website_to_tenant_a(kb, charlie_client, local_web):
    response = charlie_client.post(f"{KB_URL}{kb.pk}/add-website/", website_form(url=f"{LOCAL}/"))
    assert response.status_code == 404
    assert not Source.objects.exists()


def test_sync_now_sets_web_sources_pending_and_skips_others(alice_client, kb):
    web = make_web_source(kb, status=Source.Status.READY, error="old", cancel_requested=True)
    text = make_source(kb, "Notes", status=Source.Status.READY)
    data = {"action": "sync_now", "_selected_action": [web.pk, text.pk]}
    response = alice_client.post(SOURCE_URL, data, follow=True)
    assert messages_of(response) == [
        "1 web source(s) queued for syncing.",
        "Not web sources (use Re-ingest): Notes.",
    ]
    web.refresh_from_db()
    text.refresh_from_db()
    assert (web.status, web.error, web.cancel_requested) == ("pending", "", False)
    assert text.status == "ready"


def test_cancel_asks_a_running_source_to_stop(alice_client, kb):
    running = make_web_source(kb, status=Source.Status.RUNNING)
    finished = make_web_source(kb, title="Blog", status=Source.Status.READY)
    data = {"action": "cancel", "_selected_action": [running.pk, finished.pk]}
    response = alice_client.post(SOURCE_URL, data, follow=True)
    assert messages_of(response) == [
        "1 source(s) asked to stop; they stop within moments.",
        "Not running, nothing to cancel: Blog.",
    ]
    running.refresh_from_db()
    finished.refresh_from_db()
    assert (running.cancel_requested, finished.cancel_requested) == (True, False)


def test_the_source_page_offers_sync_now_and_cancel(alice_client, kb):
    web = make_web_source(kb, status=Source.Status.RUNNING)
    page_url = f"{SOURCE_URL}{web.pk}/change/"
    page = alice_client.get(page_url).content.decode()
    assert 'name="action" value="sync_now"' in page and ">Sync now</button>" in page
    assert 'name="action" value="cancel"' in page
    assert f'data-source-id="{web.pk}" data-live="active-only"' in page
    assert 'value="reingest"' not in page
    data = {"action": "cancel", "_selected_action": [web.pk], "_return_to": page_url}
    assert alice_client.post(SOURCE_URL, data)["Location"] == page_url

    Source.objects.filter(pk=web.pk).update(status=Source.Status.CANCELLED)
    page = alice_client.get(page_url).content.decode()
    assert 'value="cancel"' not in page
    assert 'parley-badge parley-badge-cancelled" data-source-id' in page and "Cancelled" in page

    text_page = alice_client.get(f"{SOURCE_URL}{make_source(kb).pk}/change/").content.decode()
    assert 'value="reingest"' in text_page and 'value="sync_now"' not in text_page


def test_only_the_schedule_of_a_web_source_is_editable(alice_client, kb):
    web = make_web_source(kb, status=Source.Status.RUNNING, documents_total=3)
    page_url = f"{SOURCE_URL}{web.pk}/change/"
    page = alice_client.get(page_url).content.decode()
    assert '<select name="schedule"' in page
    assert 'name="title"' not in page and 'name="kind"' not in page
    assert f'href="{LOCAL}/docs/" rel="noopener noreferrer" target="_blank"' in page
    assert "Max depth: default (3)" in page

    # The worker moves the source on meanwhile; saving the schedule must not undo that.
    Source.objects.filter(pk=web.pk).update(status=Source.Status.READY, documents_total=9)
    data = {"schedule": "daily", "title": "Hijacked", "status": "failed", "_save": "Save"}
    assert alice_client.post(page_url, data).status_code == 302
    web.refresh_from_db()
    assert (web.schedule, web.title) == ("daily", "Docs site")
    assert (web.status, web.documents_total) == ("ready", 9)

    text_page = alice_client.get(f"{SOURCE_URL}{make_source(kb).pk}/change/").content.decode()
    assert 'name="schedule"' not in text_page and 'name="_save"' not in text_page


def test_sources_are_filtered_by_schedule(alice_client, kb):
    make_web_source(kb, title="Nightly", schedule=Source.Schedule.DAILY)
    make_web_source(kb, title="Once")
    response = alice_client.get(SOURCE_URL, {"schedule__exact": "daily"})
    assert [str(s) for s in response.context["cl"].result_list] == ["Nightly"]


def test_web_progress_shows_the_sync_counters(alice_client, kb):
    web = make_web_source(
        kb,
        status=Source.Status.RUNNING,
        documents_total=6,
        documents_done=3,
        documents_failed=1,
        documents_fetched=5,
        documents_indexed=2,
        documents_unchanged=1,
        documents_removed=1,
    )
    label = "discovered 6 · fetched 5 · indexed 2 · unchanged 1 · failed 1 · removed 1"
    assert label in alice_client.get(SOURCE_URL).content.decode()
    (feed,) = alice_client.get(PROGRESS_URL, {"ids": str(web.pk)}).json()["sources"]
    assert feed["is_web"] is True and feed["kind"] == "crawl"
    assert (feed["documents_fetched"], feed["documents_indexed"]) == (5, 2)
    assert (feed["documents_unchanged"], feed["documents_removed"]) == (1, 1)


def test_a_pages_outcome_and_error_show_on_its_source(alice_client, kb):
    web = make_web_source(kb, status=Source.Status.PARTIAL)
    make_document(web, "Old page", outcome=Document.Outcome.UNCHANGED)
    make_document(
        web, "Broken page", status=Document.Status.FAILED, outcome="failed", error="HTTP 500"
    )
    page = alice_client.get(f"{SOURCE_URL}{web.pk}/change/").content.decode()
    assert '<td class="doc-outcome">Unchanged</td>' in page
    assert '<td class="doc-error">HTTP 500</td>' in page
    feed = alice_client.get(PROGRESS_URL, {"ids": str(web.pk), "documents": "1"}).json()
    outcomes = [(d["outcome"], d["error"]) for d in feed["sources"][0]["documents"]]
    assert outcomes == [("unchanged", ""), ("failed", "HTTP 500")]


def test_web_source_and_document_lists_stay_constant_and_skip_page_bodies(alice_client, kb):
    def fill(n: int) -> None:
        web = make_web_source(kb, title=f"Site {n}", status=Source.Status.RUNNING)
        make_document(
            web,
            f"Page {n}",
            chunks=1,
            outcome=Document.Outcome.INDEXED,
            raw_body=b"<html>" + b"x" * 1000,
            metadata={"images": [{"url": f"{LOCAL}/i.png", "alt": "", "caption": ""}]},
        )

    fill(0)
    with CaptureQueriesContext(connection) as sources_one:
        alice_client.get(SOURCE_URL)
    with CaptureQueriesContext(connection) as documents_one:
        assert "Indexed" in alice_client.get(DOCUMENT_URL).content.decode()
    for n in range(1, 5):
        fill(n)
    with CaptureQueriesContext(connection) as sources_five:
        alice_client.get(SOURCE_URL)
    with CaptureQueriesContext(connection) as documents_five:
        alice_client.get(DOCUMENT_URL)
    assert len(sources_five) == len(sources_one)
    assert len(documents_five) == len(documents_one)
    selected = " ".join(q["sql"] for q in documents_five.captured_queries if "SELECT" in q["sql"])
    assert '"raw_body"' not in selected and '"metadata"' not in selected


def test_documents_are_filtered_by_outcome(alice_client, kb):
    web = make_web_source(kb)
    make_document(web, "Fresh", outcome=Document.Outcome.INDEXED)
    make_document(web, "Same", outcome=Document.Outcome.UNCHANGED)
    response = alice_client.get(DOCUMENT_URL, {"outcome__exact": "unchanged"})
    assert [str(d) for d in response.context["cl"].result_list] == ["Same"]
    assert "Last sync" in response.content.decode()


def test_a_web_documents_page_links_its_url_and_lists_its_images_escaped(alice_client, kb):
    url = f'{LOCAL}/guide?a=1&b="2"'
    doc = make_document(
        make_web_source(kb),
        "Guide",
        url=url,
        outcome=Document.Outcome.INDEXED,
        fetched_at=timezone.now(),
        etag='W/"v1-etag"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
        metadata={
            "images": [
                {"url": f"{LOCAL}/img/diagram.png", "alt": XSS, "caption": "<b>How</b> it works"},
                {"url": "javascript:alert(1)", "alt": "trap", "caption": ""},
                "not an image",
                {"url": f'{LOCAL}/x.png"onerror="alert(1)', "alt": "", "caption": ""},
            ]
        },
    )
    page = alice_client.get(f"{DOCUMENT_URL}{doc.pk}/change/").content.decode()
    escaped_url = f"{LOCAL}/guide?a=1&amp;b=&quot;2&quot;"
    assert (
        f'<a href="{escaped_url}" rel="noopener noreferrer" target="_blank">{escaped_url}</a>'
        in page
    )
    assert "W/&quot;v1-etag&quot;" in page and "Wed, 21 Oct 2015 07:28:00 GMT" in page
    assert "Fetched at" in page and "Indexed" in page
    assert "Images (3)" in page
    assert f'<a href="{LOCAL}/img/diagram.png" rel="noopener noreferrer"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and XSS not in page
    assert "&lt;b&gt;How&lt;/b&gt; it works" in page
    assert '<td class="parley-image-url">javascript:alert(1)</td>' in page
    assert 'href="javascript:' not in page
    assert '"onerror="' not in page and "&quot;onerror=&quot;" in page
    assert "<img" not in page  # third-party images are never embedded in the console


def test_a_document_without_images_has_no_images_block(alice_client, kb):
    doc = make_document(make_source(kb), "Notes", url="notes.txt")
    page = alice_client.get(f"{DOCUMENT_URL}{doc.pk}/change/").content.decode()
    assert "Images (" not in page and "Fetched at" not in page
    assert "notes.txt" in page and 'href="notes.txt"' not in page


def test_charlie_cannot_sync_or_cancel_tenant_a_sources(kb, charlie_client, tenant_a):
    connection.set_tenant(tenant_a)
    web = make_web_source(kb, status=Source.Status.RUNNING)
    for action in ("sync_now", "cancel"):
        charlie_client.post(SOURCE_URL, {"action": action, "_selected_action": [web.pk]})
    assert charlie_client.get(f"{SOURCE_URL}{web.pk}/change/").status_code == 302
    connection.set_tenant(tenant_a)
    web.refresh_from_db()
    assert (web.status, web.cancel_requested) == ("running", False)
