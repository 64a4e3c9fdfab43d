"""The knowledge API contract, its errors, and tenant isolation."""

from __future__ import annotations

from django.db import connection

from knowledge.models import Document, KnowledgeBase, Source


def test_knowledge_bases_are_created_listed_updated_and_deleted(api_a, drop_collections):
    created = api_a.post(
        "/api/v1/knowledge-bases/",
        {"name": "Docs", "description": "Product docs", "embedder_api_key": ""},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    kb = created.json()
    assert kb["chunk_tokens"] == 200 and kb["embedder"] == "minilm"
    assert "embedder_api_key" not in kb and kb["has_embedder_api_key"] is False
    listed = api_a.get("/api/v1/knowledge-bases/").json()
    assert [row["name"] for row in listed["results"]] == ["Docs"]
    patched = api_a.patch(
        f"/api/v1/knowledge-bases/{kb['id']}/",
        {"description": "All product docs", "embedder_api_key": "sk-secret"},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["has_embedder_api_key"] is True
    assert "sk-secret" not in patched.content.decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT embedder_api_key FROM knowledge_knowledgebase WHERE id = %s", [kb["id"]]
        )
        assert "sk-secret" not in cursor.fetchone()[0]  # encrypted at rest
    assert api_a.delete(f"/api/v1/knowledge-bases/{kb['id']}/").status_code == 204
    assert api_a.get(f"/api/v1/knowledge-bases/{kb['id']}/").status_code == 404


def test_invalid_knowledge_base_input_gets_a_precise_400(api_a):
    response = api_a.post(
        "/api/v1/knowledge-bases/",
        {"name": "", "chunk_tokens": 5, "embedder": "openai:text-embedding-3-small"},
        content_type="application/json",
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {"name", "chunk_tokens"} <= set(details)


def test_malformed_json_gets_a_400_in_the_error_format(api_a):
    response = api_a.post("/api/v1/knowledge-bases/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_text_and_qa_sources_are_created(api_a, kb_a):
    text = api_a.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/sources/",
        {"kind": "text", "title": "Hours", "text": "Open 9 to 5."},
        content_type="application/json",
    )
    assert text.status_code == 201
    body = text.json()
    assert {
        "id",
        "kind",
        "status",
        "documents_total",
        "documents_done",
        "documents_failed",
        "chunks",
        "error",
    } <= set(body)
    assert body["kind"] == "text" and body["status"] == "pending"
    qa = api_a.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/sources/",
        {"kind": "qa", "pairs": [{"question": "Refunds?", "answer": "Within 30 days."}]},
        content_type="application/json",
    )
    assert qa.status_code == 201 and qa.json()["kind"] == "qa"
    bad = api_a.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/sources/",
        {"kind": "qa", "pairs": [{"question": "No answer"}]},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "pairs" in bad.json()["error"]["details"]


def test_file_upload_returns_a_source_per_file_and_per_file_errors(api_a, kb_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        SimpleUploadedFile("a.txt", b"Alpha text about returns."),
        SimpleUploadedFile("b.md", b"# Beta\n\nBeta text."),
        SimpleUploadedFile("c.exe", b"MZ\x90\x00" + bytes(range(256))),
    ]
    response = api_a.post(f"/api/v1/knowledge-bases/{kb_a.pk}/files/", {"file": files})
    assert response.status_code == 201, response.content
    body = response.json()
    assert sorted(s["title"] for s in body["sources"]) == ["a.txt", "b.md"]
    assert [e["file"] for e in body["errors"]] == ["c.exe"]
    assert "c.exe" not in body["errors"][0]["error"] and body["errors"][0]["error"].endswith(".")
    again = api_a.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/files/",
        {"file": [SimpleUploadedFile("a-copy.txt", b"Alpha text about returns.")]},
    )
    assert again.status_code == 201
    assert again.json()["sources"] == [] and len(again.json()["duplicates"]) == 1


def test_an_upload_without_files_is_a_400(api_a, kb_a):
    response = api_a.post(f"/api/v1/knowledge-bases/{kb_a.pk}/files/", {})
    assert response.status_code == 400
    assert "file" in response.json()["error"]["details"]


def test_sources_and_their_documents_are_readable_and_deletable(api_a, kb_a):
    source = Source.objects.create(
        knowledge_base=kb_a, kind="text", title="T", config={"text": "x"}
    )
    for number in range(3):
        Document.objects.create(
            source=source,
            ref=f"d{number}",
            title=f"Doc {number}",
            status="failed" if number == 2 else "ready",
            error="boom" if number == 2 else "",
        )
    detail = api_a.get(f"/api/v1/sources/{source.pk}/")
    assert detail.status_code == 200 and detail.json()["id"] == source.pk
    docs = api_a.get(f"/api/v1/sources/{source.pk}/documents/").json()
    assert docs["count"] == 3
    assert [d["status"] for d in docs["results"]] == ["ready", "ready", "failed"]
    assert docs["results"][2]["error"] == "boom"
    assert api_a.delete(f"/api/v1/sources/{source.pk}/").status_code == 204
    assert not Source.objects.filter(pk=source.pk).exists()


def test_charlie_cannot_see_or_touch_tenant_a_knowledge(api_a, api_b, kb_a, tenant_a):
    source = Source.objects.create(knowledge_base=kb_a, kind="text", title="Secret")
    connection.set_schema_to_public()
    for method, url, payload in [
        ("get", f"/api/v1/knowledge-bases/{kb_a.pk}/", None),
        ("patch", f"/api/v1/knowledge-bases/{kb_a.pk}/", {"name": "pwned"}),
        ("delete", f"/api/v1/knowledge-bases/{kb_a.pk}/", None),
        ("post", f"/api/v1/knowledge-bases/{kb_a.pk}/search/", {"query": "secret"}),
        ("post", f"/api/v1/knowledge-bases/{kb_a.pk}/sources/", {"kind": "text", "text": "x"}),
        ("get", f"/api/v1/sources/{source.pk}/", None),
        ("get", f"/api/v1/sources/{source.pk}/documents/", None),
        ("delete", f"/api/v1/sources/{source.pk}/", None),
    ]:
        response = getattr(api_b, method)(url, payload, content_type="application/json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    assert api_b.get("/api/v1/knowledge-bases/").json()["results"] == []
    connection.set_tenant(tenant_a)
    assert KnowledgeBase.objects.filter(pk=kb_a.pk, name="Handbook").exists()
    assert Source.objects.filter(pk=source.pk).exists()


def test_search_ranks_by_vector_similarity(api_a, kb_a, run_on_commit):
    from knowledge import services

    run_on_commit(services.add_text_source, kb_a, "Hours", "We are open Monday to Friday from 9am.")
    run_on_commit(services.add_text_source, kb_a, "Pets", "Dogs are welcome in our stores.")
    response = api_a.post(
        f"/api/v1/knowledge-bases/{kb_a.pk}/search/",
        {"query": "when are you open?", "top_k": 2},
        content_type="application/json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0]["document"]["title"] == "Hours"
    assert results[0]["score"] > results[1]["score"]
    assert {"text", "score", "document"} <= set(results[0])
    assert {"title", "url"} <= set(results[0]["document"])
