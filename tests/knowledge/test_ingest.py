"""The ingestion pipeline, with tasks run in-process: every format into chunks and vectors,
bad files failing alone, idempotent re-runs, deletions and a rebuildable index."""

from __future__ import annotations

import pytest

from knowledge import index, services
from knowledge.models import Chunk, Document, Source
from tests.knowledge.samples import (
    make_pdf,
    office_zip,
    sample_docx,
    sample_pdf,
    sample_pptx,
    sample_xlsx,
)

MB = 1024 * 1024

GUIDE = """# Returns policy

You can return any item within 30 days of delivery for a full refund.

## Damaged items

- Take a photo of the damage.
- Send it to support@example.com with your order number.

## Refund timing

Refunds reach your card within 5 business days after we receive the parcel.
"""


def good_files() -> list[tuple[str, bytes]]:
    return [
        ("guide.md", GUIDE.encode()),
        ("notes.txt", b"Opening hours\n\nWe are open Monday to Friday, 9am to 5pm."),
        (
            "page.html",
            b"<html><head><title>Shipping</title></head><body><h1>Shipping</h1>"
            b"<p>We ship to 40 countries with tracked delivery.</p></body></html>",
        ),
        ("prices.csv", b"plan,price\nStarter,10 EUR\nBusiness,49 EUR\n"),
        ("handbook.docx", sample_docx()),
        ("deck.pptx", sample_pptx()),
        ("sheet.xlsx", sample_xlsx()),
        ("manual.pdf", sample_pdf()),
    ]


def zip_bomb() -> bytes:
    return office_zip({"word/document.xml": b"\0" * (300 * MB)}, level=9)


def test_a_text_source_becomes_chunks_and_vectors(kb_a, run_on_commit):
    source = run_on_commit(services.add_text_source, kb_a, "Returns", GUIDE)
    source.refresh_from_db()
    assert source.status == Source.Status.READY
    assert (source.documents_total, source.documents_done, source.documents_failed) == (1, 1, 0)
    chunks = list(Chunk.objects.filter(document__source=source))
    assert source.chunks == len(chunks) > 0
    paths = [chunk.heading_path for chunk in chunks]
    assert any(path[-1:] == ["Damaged items"] for path in paths)
    assert all(chunk.context.startswith("Returns") for chunk in chunks)
    report = services.check_index(kb_a)
    assert report.consistent and report.vectors == len(chunks)


def test_every_format_is_ingested_and_bad_files_fail_alone(kb_a, run_on_commit, settings):
    settings.PARLEY_MAX_UPLOAD_BYTES = 2 * MB
    batch = [
        *good_files(),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage"),
        ("program.exe", b"MZ\x90\x00" + bytes(range(256)) * 8),
        ("huge.txt", b"a" * (2 * MB + 1)),
        ("bomb.docx", zip_bomb()),
        ("really-a-pdf.docx", make_pdf([[(16, "Mislabelled"), (11, "A PDF with a .docx name.")]])),
    ]
    outcomes = run_on_commit(services.add_file_sources, kb_a, batch)
    errors = {o.name: o.error for o in outcomes if o.error}
    assert set(errors) == {"program.exe", "huge.txt", "bomb.docx"}
    assert "largest file accepted" in errors["huge.txt"]
    assert errors["bomb.docx"] and errors["program.exe"]
    docs = {doc.url: doc for doc in Document.objects.filter(source__knowledge_base=kb_a)}
    assert docs["broken.pdf"].status == Document.Status.FAILED
    assert "PDF" in docs["broken.pdf"].error
    assert docs["really-a-pdf.docx"].mime_type == "application/pdf"
    for name, _ in good_files():
        assert docs[name].status == Document.Status.READY, (name, docs[name].error)
        assert docs[name].chunk_count > 0
    statuses = {s.title: s.status for s in Source.objects.filter(knowledge_base=kb_a)}
    assert statuses["broken.pdf"] == Source.Status.FAILED
    assert statuses["guide.md"] == Source.Status.READY
    assert services.check_index(kb_a).consistent


def test_an_identical_upload_changes_nothing(kb_a, run_on_commit):
    first = run_on_commit(services.add_file_sources, kb_a, [("guide.md", GUIDE.encode())])
    ids = set(Chunk.objects.values_list("id", flat=True))
    again = run_on_commit(services.add_file_sources, kb_a, [("copy.md", GUIDE.encode())])
    assert again[0].duplicate and again[0].source.pk == first[0].source.pk
    assert Source.objects.filter(knowledge_base=kb_a).count() == 1
    assert set(Chunk.objects.values_list("id", flat=True)) == ids


def test_reingesting_unchanged_content_is_a_no_op(kb_a, run_on_commit, monkeypatch):
    source = run_on_commit(services.add_text_source, kb_a, "Returns", GUIDE)
    ids = sorted(Chunk.objects.filter(document__source=source).values_list("id", flat=True))
    from knowledge import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "chunk_drafts", lambda *a: calls.append(a))
    run_on_commit(services.reingest, source)
    assert calls == []  # skipped on the content hash, before parsing or embedding
    source.refresh_from_db()
    assert source.status == Source.Status.READY
    assert sorted(Chunk.objects.filter(document__source=source).values_list("id", flat=True)) == ids


def test_changed_qa_pairs_replace_their_chunks_and_vectors(kb_a, run_on_commit):
    pairs = [
        {"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."},
        {"question": "Can I pay by invoice?", "answer": "Business plans can."},
    ]
    source = run_on_commit(services.add_qa_source, kb_a, pairs)
    before = set(Chunk.objects.values_list("id", flat=True))
    source.config["pairs"] = pairs[:1]
    source.save()
    run_on_commit(services.reingest, source)
    after = set(Chunk.objects.values_list("id", flat=True))
    assert len(after) == 1 and after < before
    assert set(index.all_ids(kb_a.collection_name)) == after


def test_a_visitor_question_close_to_a_stored_question_finds_its_answer(kb_a, run_on_commit):
    pairs = [
        {"question": "How long does delivery take?", "answer": "Two to four working days."},
        {"question": "Can I change my password?", "answer": "Yes, under Account > Security."},
        {"question": "Do you offer student discounts?", "answer": "Students get 20% off."},
    ]
    run_on_commit(services.add_qa_source, kb_a, pairs)
    results = services.search(kb_a, "how many days until my parcel arrives", top_k=3)
    assert "Two to four working days." in results[0]["text"]
    assert results[0]["score"] > results[1]["score"]


def test_deleting_documents_sources_and_knowledge_bases_deletes_vectors(kb_a, run_on_commit):
    from knowledge import pipeline

    keep = run_on_commit(services.add_text_source, kb_a, "Keep", "Opening hours are 9 to 5.")
    gone = run_on_commit(services.add_text_source, kb_a, "Gone", GUIDE)
    gone_ids = set(Chunk.objects.filter(document__source=gone).values_list("id", flat=True))
    run_on_commit(services.delete_source, gone)
    assert not gone_ids & set(index.all_ids(kb_a.collection_name))
    run_on_commit(pipeline.delete_document, keep.documents.get())
    assert list(index.all_ids(kb_a.collection_name)) == []
    name = kb_a.collection_name
    run_on_commit(services.delete_knowledge_base, kb_a)
    assert name not in index.collection_names()


def test_rebuild_index_restores_search_after_chroma_is_wiped(kb_a, run_on_commit):
    run_on_commit(services.add_text_source, kb_a, "Returns", GUIDE)
    query = "how fast is my refund paid"
    before = services.search(kb_a, query)
    index.drop(kb_a.collection_name)
    # Full text still finds the chunk; the vector side has nothing left.
    assert [r for r in services.search(kb_a, query) if r["vector_score"] is not None] == []
    report = services.check_index(kb_a)
    assert report.rows_without_vectors and not report.consistent
    assert services.rebuild_index(kb_a) == report.rows
    after = services.search(kb_a, query)
    assert [r["chunk_id"] for r in after] == [r["chunk_id"] for r in before]
    assert services.check_index(kb_a).consistent


def test_check_index_reports_vectors_without_rows(kb_a, run_on_commit):
    run_on_commit(services.add_text_source, kb_a, "Returns", GUIDE)
    index.upsert(kb_a.collection_name, ["orphan-1"], [[0.1] * 384])
    report = services.check_index(kb_a)
    assert report.vectors_without_rows == ["orphan-1"] and not report.rows_without_vectors


def test_the_embedder_is_fixed_once_there_is_content(kb_a, run_on_commit):
    from django.core.exceptions import ValidationError

    services.update_knowledge_base(kb_a, {"embedder": "openai:text-embedding-3-small"})
    services.update_knowledge_base(kb_a, {"embedder": "minilm"})  # no content yet: fine
    run_on_commit(services.add_text_source, kb_a, "Returns", GUIDE)
    with pytest.raises(ValidationError, match="fixed once"):
        services.update_knowledge_base(kb_a, {"embedder": "openai:text-embedding-3-small"})


def test_tenants_never_share_a_collection_or_results(
    kb_a, run_on_commit, tenant_b, drop_collections
):
    from django.db import connection

    from knowledge.models import KnowledgeBase

    run_on_commit(services.add_text_source, kb_a, "Secret", "Tenant A's launch code is 4242.")
    name_a = kb_a.collection_name
    connection.set_tenant(tenant_b)
    # The same id in another schema: the collection is still another one.
    kb_b = KnowledgeBase.objects.create(pk=kb_a.pk, name="Same id, other tenant")
    drop_collections.append(kb_b.collection_name)
    assert kb_b.collection_name != name_a
    assert services.search(kb_b, "launch code") == []
    run_on_commit(services.add_text_source, kb_b, "Other", "Tenant B sells bicycles.")
    assert [r["text"] for r in services.search(kb_b, "launch code")] == ["Tenant B sells bicycles."]
