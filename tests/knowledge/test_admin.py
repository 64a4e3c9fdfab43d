"""The knowledge console: knowledge bases, sources added from a knowledge base's page (files,
text, Q&A pairs, websites), live progress, documents and chunks, actions (re-ingest, sync now,
cancel), escaping and isolation.

Ingestion is queued on commit, which never happens inside a test's transaction, so these tests
need no worker; documents and chunks are created directly where a page needs them."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from knowledge import index
from knowledge.models import Chunk, Document, KnowledgeBase, Source, SourceFile
from tests.conftest import HOST_A

KB_URL = "/admin/knowledge/knowledgebase/"
SOURCE_URL = "/admin/knowledge/source/"
DOCUMENT_URL = "/admin/knowledge/document/"
PROGRESS_URL = "/admin/knowledge/source/progress/"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def kb(alice_client, kb_a, tenant_a) -> KnowledgeBase:
    connection.set_tenant(tenant_a)  # alice_client's login leaves the connection on public
    return kb_a


def make_source(kb: KnowledgeBase, title: str = "Guide", **fields) -> Source:
    return Source.objects.create(knowledge_base=kb, kind=Source.Kind.TEXT, title=title, **fields)


def make_document(source: Source, title: str = "Guide", chunks: int = 0, **fields) -> Document:
    doc = Document.objects.create(
        source=source, ref=f"{title}-{Document.objects.count()}", title=title, **fields
    )
    Chunk.objects.bulk_create(
        Chunk(
            id=f"{doc.pk}-test-{n}",
            document=doc,
            ordinal=n,
            text=f"Chunk {n} of {title}",
            heading_path=["Guide", "Install"],
            token_count=7,
            embedding=np.ones(4, dtype=np.float32).tobytes(),
        )
        for n in range(chunks)
    )
    if chunks:
        Document.objects.filter(pk=doc.pk).update(chunk_count=chunks)
        doc.refresh_from_db()
    return doc


def messages_of(response) -> list[str]:
    """The messages shown on the page a redirect leads to (follow=True)."""
    return [str(message) for message in response.context["messages"]]


def kb_form(kb: KnowledgeBase, **changes) -> dict[str, str]:
    data = {
        "name": kb.name,
        "description": kb.description,
        "chunk_tokens": str(kb.chunk_tokens),
        "chunk_overlap": str(kb.chunk_overlap),
        "embedder": kb.embedder,
        "embedder_api_key": "",
        "_save": "Save",
    }
    return {**data, **changes}


# --- Knowledge bases --------------------------------------------------------------------
def test_the_knowledge_base_list_counts_in_a_constant_number_of_queries(alice_client, kb):
    def fill(base: KnowledgeBase) -> None:
        source = make_source(base, status=Source.Status.READY)
        make_document(source, "One", chunks=2)
        make_document(source, "Two", chunks=3)
        make_source(base, "Second", status=Source.Status.RUNNING)

    fill(kb)
    with CaptureQueriesContext(connection) as one:
        assert alice_client.get(KB_URL).status_code == 200
    for n in range(4):
        fill(KnowledgeBase.objects.create(name=f"Base {n}"))
    with CaptureQueriesContext(connection) as five:
        response = alice_client.get(KB_URL)
    assert len(five) == len(one)
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert len(rows) == 5
    handbook = rows["Handbook"]
    assert (handbook.n_sources, handbook.n_active) == (2, 1)
    assert (handbook.n_documents, handbook.n_chunks) == (2, 5)
    assert "2 (1 ingesting)" in response.content.decode()


def test_the_embedder_key_is_write_only(alice_client, kb):
    kb.embedder_api_key = "sk-stored-secret-0123"
    kb.save()
    url = f"{KB_URL}{kb.pk}/change/"
    page = alice_client.get(url).content.decode()
    assert "sk-stored-secret-0123" not in page
    assert 'type="password" name="embedder_api_key"' in page

    # Left blank, the stored key stays.
    response = alice_client.post(url, kb_form(kb, name="Renamed"))
    assert response.status_code == 302
    kb.refresh_from_db()
    assert (kb.name, kb.embedder_api_key) == ("Renamed", "sk-stored-secret-0123")

    alice_client.post(url, kb_form(kb, embedder_api_key="sk-new-key-4567"))
    kb.refresh_from_db()
    assert kb.embedder_api_key == "sk-new-key-4567"
    assert "sk-new-key-4567" not in alice_client.get(url).content.decode()

    alice_client.post(url, kb_form(kb, clear_embedder_api_key="on"))
    kb.refresh_from_db()
    assert kb.embedder_api_key == ""


def test_a_knowledge_base_is_created_with_a_key(alice_client, kb):
    data = kb_form(kb, name="Support", embedder_api_key="sk-created-key-89")
    response = alice_client.post(f"{KB_URL}add/", data)
    assert response.status_code == 302
    assert KnowledgeBase.objects.get(name="Support").embedder_api_key == "sk-created-key-89"


def test_the_embedder_is_read_only_once_the_knowledge_base_has_content(alice_client, kb):
    url = f"{KB_URL}{kb.pk}/change/"
    assert 'name="embedder"' in alice_client.get(url).content.decode()
    make_document(make_source(kb), chunks=1)
    assert 'name="embedder"' not in alice_client.get(url).content.decode()
    alice_client.post(url, kb_form(kb, embedder=KnowledgeBase.Embedder.OPENAI_SMALL))
    kb.refresh_from_db()
    assert kb.embedder == KnowledgeBase.Embedder.MINILM


def test_the_knowledge_base_page_offers_the_ways_to_add_sources(alice_client, kb):
    make_source(kb, XSS, status=Source.Status.RUNNING)
    page = alice_client.get(f"{KB_URL}{kb.pk}/change/").content.decode()
    for path in ("upload/", "add-text/", "add-qa/", "add-website/"):
        assert f"{KB_URL}{kb.pk}/{path}" in page
    assert 'data-live="progress"' in page and 'data-status="running"' in page
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_deleting_a_knowledge_base_removes_its_sources(alice_client, kb):
    make_document(make_source(kb), chunks=2)
    page = alice_client.get(f"{KB_URL}{kb.pk}/delete/").content.decode()
    assert "Handbook" in page and "Chunks: 2" in page
    response = alice_client.post(f"{KB_URL}{kb.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not KnowledgeBase.objects.filter(pk=kb.pk).exists()
    assert not Chunk.objects.exists()


def test_rebuild_and_check_index_report_vectors(alice_client, kb):
    make_document(make_source(kb), chunks=3)
    response = alice_client.post(
        KB_URL, {"action": "rebuild_index", "_selected_action": [kb.pk]}, follow=True
    )
    assert messages_of(response) == ["Handbook: index rebuilt, 3 vector(s)."]
    response = alice_client.post(
        KB_URL, {"action": "check_index", "_selected_action": [kb.pk]}, follow=True
    )
    assert messages_of(response) == ["Handbook: consistent, 3 chunk(s), 3 vector(s)."]
    index.delete(kb.collection_name, [f"{Chunk.objects.first().pk}"])
    response = alice_client.post(
        KB_URL, {"action": "check_index", "_selected_action": [kb.pk]}, follow=True
    )
    assert "1 chunk(s) without a vector, 0 vector(s) without a chunk" in messages_of(response)[0]


# --- Adding sources ---------------------------------------------------------------------
def test_the_upload_form_takes_many_files(alice_client, kb):
    page = alice_client.get(f"{KB_URL}{kb.pk}/upload/").content.decode()
    assert 'type="file" name="files"' in page and "multiple" in page


def test_an_upload_reports_each_file(alice_client, kb):
    files = [
        SimpleUploadedFile("notes.txt", b"Opening hours\n\nMonday to Friday, 9am to 5pm."),
        SimpleUploadedFile("program.exe", b"\x7fELF\x02\x01\x01" + b"\x00" * 64),
    ]
    response = alice_client.post(f"{KB_URL}{kb.pk}/upload/", {"files": files}, follow=True)
    assert response.redirect_chain == [(f"{KB_URL}{kb.pk}/change/", 302)]
    assert messages_of(response) == [
        "notes.txt: queued",
        "program.exe: This file looks like a program, which is not supported.",
    ]
    source = Source.objects.get(knowledge_base=kb)
    assert (source.kind, source.title, source.status) == ("file", "notes.txt", "pending")
    assert SourceFile.objects.get(source=source).name == "notes.txt"

    again = SimpleUploadedFile("copy.txt", b"Opening hours\n\nMonday to Friday, 9am to 5pm.")
    response = alice_client.post(f"{KB_URL}{kb.pk}/upload/", {"files": [again]}, follow=True)
    assert messages_of(response) == ["copy.txt: already in this knowledge base"]
    assert response.redirect_chain == [(f"{KB_URL}{kb.pk}/upload/", 302)]
    assert Source.objects.count() == 1


def test_an_upload_without_files_is_a_form_error(alice_client, kb):
    response = alice_client.post(f"{KB_URL}{kb.pk}/upload/", {})
    assert response.status_code == 200 and "This field is required" in response.content.decode()


def test_pasted_text_becomes_a_text_source(alice_client, kb):
    url = f"{KB_URL}{kb.pk}/add-text/"
    response = alice_client.post(url, {"title": "Opening hours", "text": "Mon-Fri 9 to 5."})
    assert response.status_code == 302
    source = Source.objects.get(knowledge_base=kb)
    assert (source.kind, source.title) == ("text", "Opening hours")
    assert source.config == {"text": "Mon-Fri 9 to 5."}
    response = alice_client.post(url, {"title": "Blank", "text": "   "})
    assert response.status_code == 200 and Source.objects.count() == 1


def qa_formset(*rows: tuple[str, str]) -> dict[str, str]:
    data = {"pairs-TOTAL_FORMS": str(len(rows)), "pairs-INITIAL_FORMS": "0"}
    for n, (question, answer) in enumerate(rows):
        data[f"pairs-{n}-question"], data[f"pairs-{n}-answer"] = question, answer
    return data


def test_qa_pairs_typed_in_the_form_become_a_source(alice_client, kb):
    data = {
        "title": "FAQ",
        **qa_formset(("Do you ship abroad?", "Yes, to 40 countries."), ("", "")),
    }
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-qa/", data)
    assert response.status_code == 302
    source = Source.objects.get(knowledge_base=kb)
    assert source.kind == "qa" and source.title == "FAQ"
    assert source.config["pairs"] == [
        {"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."}
    ]


def test_qa_pairs_imported_from_csv_become_a_source(alice_client, kb):
    csv = SimpleUploadedFile("faq.csv", b"question,answer\nOpen on Sunday?,No.\nParking?,Yes.\n")
    data = {"csv_file": csv, **qa_formset(("Returns?", "Within 30 days."))}
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-qa/", data)
    assert response.status_code == 302
    pairs = Source.objects.get(knowledge_base=kb).config["pairs"]
    assert [pair["question"] for pair in pairs] == ["Returns?", "Open on Sunday?", "Parking?"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (qa_formset(("A question without answer", "")), "Give both a question and an answer"),
        (qa_formset(("", "")), "Give at least one"),
        (
            {"csv_file": SimpleUploadedFile("x.csv", b"q,a\n1,2\n"), **qa_formset()},
            "The CSV needs a header row with question and answer.",
        ),
    ],
)
def test_bad_qa_input_is_shown_on_the_form(alice_client, kb, data, error):
    response = alice_client.post(f"{KB_URL}{kb.pk}/add-qa/", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Source.objects.exists()


def test_sources_are_not_added_through_a_raw_form(alice_client, kb):
    assert alice_client.get(f"{SOURCE_URL}add/").status_code == 403


# --- Progress ---------------------------------------------------------------------------
def test_the_progress_feed_reports_counts_and_errors(alice_client, kb):
    running = make_source(
        kb,
        status=Source.Status.RUNNING,
        documents_total=4,
        documents_done=2,
        documents_failed=1,
        chunks=9,
        error="1 of 4 document(s) failed",
    )
    ready = make_source(kb, "Done", status=Source.Status.READY)
    response = alice_client.get(PROGRESS_URL, {"ids": f"{running.pk},{ready.pk},999999"})
    assert response.status_code == 200
    first, second = response.json()["sources"]
    assert first == {
        "id": running.pk,
        "title": "Guide",
        "kind": "text",
        "is_web": False,
        "status": "running",
        "status_label": "Running",
        "cancel_requested": False,
        "progress": 75,
        "documents_total": 4,
        "documents_done": 2,
        "documents_failed": 1,
        "chunks": 9,
        "documents_fetched": 0,
        "documents_indexed": 0,
        "documents_unchanged": 0,
        "documents_removed": 0,
        "error": "1 of 4 document(s) failed",
    }
    assert (second["id"], second["progress"]) == (ready.pk, 100)


def test_the_progress_feed_lists_a_sources_documents(alice_client, kb):
    source = make_source(kb, status=Source.Status.RUNNING)
    make_document(source, "Bad", status=Document.Status.FAILED, error="Corrupt PDF")
    response = alice_client.get(PROGRESS_URL, {"ids": str(source.pk), "documents": "1"})
    (document,) = response.json()["sources"][0]["documents"]
    assert document["title"] == "Bad" and document["status"] == "failed"
    assert document["error"] == "Corrupt PDF"
    assert (document["outcome"], document["outcome_label"]) == ("", "")
    assert document["url"] == f"{DOCUMENT_URL}{document['id']}/change/"


def test_the_progress_feed_rejects_bad_ids(alice_client, kb):
    response = alice_client.get(PROGRESS_URL, {"ids": "1,abc"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_the_progress_feed_is_for_staff_only(kb):
    response = Client(HTTP_HOST=HOST_A).get(PROGRESS_URL, {"ids": "1"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_charlie_cannot_read_tenant_a_progress(kb, charlie_client, tenant_a):
    connection.set_tenant(tenant_a)
    source = make_source(kb, "Alice's secret plan", status=Source.Status.RUNNING)
    response = charlie_client.get(PROGRESS_URL, {"ids": str(source.pk), "documents": "1"})
    assert response.status_code == 200
    assert response.json() == {"sources": []}
    assert "secret plan" not in response.content.decode()


# --- Sources ----------------------------------------------------------------------------
def test_the_source_list_shows_live_progress_in_constant_queries(alice_client, kb):
    make_source(kb, status=Source.Status.RUNNING, documents_total=2, documents_done=1)
    with CaptureQueriesContext(connection) as one:
        response = alice_client.get(SOURCE_URL)
    page = response.content.decode()
    assert "50% · 1/2 done · 0 chunks" in page
    assert f'data-progress-url="{PROGRESS_URL}"' in page and "knowledge-admin.js" in page
    for n in range(4):
        other = KnowledgeBase.objects.create(name=f"Base {n}")
        SourceFile.objects.create(
            source=Source.objects.create(knowledge_base=other, kind="file", title=f"f{n}.txt"),
            name=f"f{n}.txt",
            size=3,
            sha256=f"{n}" * 64,
            data=b"abc",
        )
    with CaptureQueriesContext(connection) as five:
        alice_client.get(SOURCE_URL)
    assert len(five) == len(one)


def test_the_source_page_lists_its_documents(alice_client, kb):
    source = make_source(kb, status=Source.Status.PARTIAL)
    ok = make_document(source, "Install guide", chunks=2, status=Document.Status.READY)
    make_document(source, XSS, status=Document.Status.FAILED, error="<b>broken</b> file")
    page = alice_client.get(f"{SOURCE_URL}{source.pk}/change/").content.decode()
    assert f"{DOCUMENT_URL}{ok.pk}/change/" in page and "Install guide" in page
    assert f'data-documents-for="{source.pk}"' in page
    assert XSS not in page and "&lt;b&gt;broken&lt;/b&gt; file" in page


def test_reingest_sets_the_sources_pending(alice_client, kb):
    source = make_source(kb, status=Source.Status.FAILED, error="Chroma was down")
    data = {"action": "reingest", "_selected_action": [source.pk]}
    response = alice_client.post(SOURCE_URL, data, follow=True)
    assert messages_of(response) == ["1 source(s) queued for re-ingestion."]
    source.refresh_from_db()
    assert (source.status, source.error) == ("pending", "")


def test_re_ingest_from_a_source_page_returns_to_it(alice_client, kb):
    source = make_source(kb, status=Source.Status.READY)
    page_url = f"{SOURCE_URL}{source.pk}/change/"
    assert "Re-ingest" in alice_client.get(page_url).content.decode()
    data = {"action": "reingest", "_selected_action": [source.pk], "_return_to": page_url}
    response = alice_client.post(SOURCE_URL, data)
    assert response.status_code == 302 and response["Location"] == page_url
    source.refresh_from_db()
    assert source.status == "pending"
    # Only a path on this site: anything else falls back to the list.
    data["_return_to"] = "https://evil.example/"
    assert alice_client.post(SOURCE_URL, data)["Location"] == SOURCE_URL


def test_deleting_sources_goes_through_the_service(alice_client, kb):
    source = make_source(kb)
    make_document(source, chunks=2)
    keep = make_source(kb, "Keep")
    data = {"action": "delete_selected", "_selected_action": [source.pk], "post": "yes"}
    assert alice_client.post(SOURCE_URL, data).status_code == 302
    assert list(Source.objects.all()) == [keep]
    assert not Chunk.objects.exists()


# --- Documents --------------------------------------------------------------------------
def test_user_text_is_escaped_on_the_document_list(alice_client, kb):
    make_document(make_source(kb), XSS, status=Document.Status.FAILED, error=f"bad {XSS}")
    page = alice_client.get(DOCUMENT_URL).content.decode()
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_document_list_has_constant_queries(alice_client, kb):
    make_document(make_source(kb), "One", chunks=1)
    with CaptureQueriesContext(connection) as one:
        assert alice_client.get(DOCUMENT_URL).status_code == 200
    for n in range(4):
        make_document(make_source(kb, f"S{n}"), f"Doc {n}", chunks=1)
    with CaptureQueriesContext(connection) as five:
        alice_client.get(DOCUMENT_URL)
    assert len(five) == len(one)


def test_the_document_page_shows_its_chunks_read_only(alice_client, kb):
    doc = make_document(make_source(kb), "Install guide", chunks=2)
    Chunk.objects.filter(document=doc, ordinal=1).update(text=f"Run {XSS} carefully")
    page = alice_client.get(f"{DOCUMENT_URL}{doc.pk}/change/").content.decode()
    assert (
        "Chunks (2)" in page
        and "Guide \u203a Install" in page
        and "Chunk 0 of Install guide" in page
    )
    assert "Run &lt;script&gt;alert(1)&lt;/script&gt; carefully" in page
    assert 'name="_save"' not in page
    assert alice_client.get(f"{DOCUMENT_URL}add/").status_code == 403


def test_deleting_a_document_updates_its_source(alice_client, kb):
    source = make_source(kb, documents_total=2, documents_done=2, chunks=3)
    doc = make_document(source, "One", chunks=1, status=Document.Status.READY)
    make_document(source, "Two", chunks=2, status=Document.Status.READY)
    response = alice_client.post(f"{DOCUMENT_URL}{doc.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.documents_total, source.chunks) == (1, 2)
