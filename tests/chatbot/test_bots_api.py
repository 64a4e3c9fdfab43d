"""The bots API: public ids, a write-only encrypted provider key, validation, isolation."""

from __future__ import annotations

import logging

from django.db import connection

from chatbot.models import Bot
from knowledge.models import KnowledgeBase

KEY = "sk-test-THIS-KEY-MUST-NEVER-BE-SHOWN-0123456789"


def create(api, **fields):  # type: ignore[no-untyped-def]
    return api.post("/api/v1/bots/", {"name": "Helper", **fields}, content_type="application/json")


def test_a_bot_is_created_with_an_unguessable_public_id(api_a):
    kb = KnowledgeBase.objects.create(name="Docs")
    response = create(api_a, knowledge_bases=[kb.pk], greeting="Hello!")
    assert response.status_code == 201, response.content
    bot = response.json()
    assert len(bot["id"]) >= 20 and not bot["id"].isdigit()
    assert bot["knowledge_bases"] == [kb.pk]
    assert bot["provider"] == "extractive" and bot["model"] == "extractive"
    assert bot["id"] == Bot.objects.get().public_id
    assert api_a.get(f"/api/v1/bots/{bot['id']}/").json()["greeting"] == "Hello!"
    assert api_a.get(f"/api/v1/bots/{Bot.objects.get().pk}/").status_code == 404  # no int ids


def test_bots_are_listed_updated_and_deleted(api_a):
    public_id = create(api_a).json()["id"]
    assert [b["id"] for b in api_a.get("/api/v1/bots/").json()["results"]] == [public_id]
    patched = api_a.patch(
        f"/api/v1/bots/{public_id}/",
        {"top_k": 8, "relevance_threshold": 0.5, "suggested_questions": ["Prices?"]},
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["top_k"] == 8 and patched.json()["suggested_questions"] == ["Prices?"]
    assert api_a.delete(f"/api/v1/bots/{public_id}/").status_code == 204
    assert api_a.get(f"/api/v1/bots/{public_id}/").status_code == 404


def test_the_provider_key_is_write_only_and_encrypted_at_rest(api_a, caplog):
    caplog.set_level(logging.DEBUG)
    response = create(api_a, provider="openai", api_key=KEY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_api_key"] is True and "api_key" not in body
    public_id = body["id"]
    for page in (api_a.get(f"/api/v1/bots/{public_id}/"), api_a.get("/api/v1/bots/")):
        assert KEY not in page.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM chatbot_bot WHERE public_id = %s", [public_id])
        stored = cursor.fetchone()[0]
    assert stored and KEY not in stored
    assert Bot.objects.get(public_id=public_id).api_key == KEY
    # A blank key keeps the stored one; clear_api_key removes it.
    api_a.patch(f"/api/v1/bots/{public_id}/", {"api_key": ""}, content_type="application/json")
    assert Bot.objects.get(public_id=public_id).api_key == KEY
    cleared = api_a.patch(
        f"/api/v1/bots/{public_id}/",
        {"provider": "extractive", "clear_api_key": True},
        content_type="application/json",
    )
    assert cleared.json()["has_api_key"] is False
    assert not any(KEY in record.getMessage() for record in caplog.records)


def test_invalid_bots_get_a_precise_400(api_a):
    no_key = create(api_a, provider="anthropic")
    assert no_key.status_code == 400
    assert "api_key" in no_key.json()["error"]["details"]
    no_url = create(api_a, provider="openai_compatible")
    assert "base_url" in no_url.json()["error"]["details"]
    bad = create(api_a, color="red; background:url(x)", temperature=5, allowed_origins="nope")
    details = bad.json()["error"]["details"]
    assert {"color", "temperature"} <= set(details)
    origins = create(api_a, allowed_origins="https://ok.example\nftp://nope")
    assert "allowed_origins" in origins.json()["error"]["details"]
    unknown_kb = create(api_a, knowledge_bases=[999999])
    assert "knowledge_bases" in unknown_kb.json()["error"]["details"]
    assert not Bot.objects.exists()


def test_charlie_cannot_see_or_use_tenant_a_bots(api_a, api_b):
    public_id = create(api_a).json()["id"]
    assert api_b.get(f"/api/v1/bots/{public_id}/").status_code == 404
    assert api_b.get("/api/v1/bots/").json()["results"] == []
    for method, path, body in [
        ("patch", f"/api/v1/bots/{public_id}/", {"name": "x"}),
        ("delete", f"/api/v1/bots/{public_id}/", None),
        ("post", f"/api/v1/bots/{public_id}/search/", {"query": "anything"}),
        ("post", f"/api/v1/bots/{public_id}/chat/", {"message": "hello"}),
    ]:
        response = getattr(api_b, method)(path, body, content_type="application/json")
        assert response.status_code == 404, (method, path)


def test_a_bot_cannot_use_another_tenants_knowledge_base(api_a, api_b, tenant_a):
    connection.set_tenant(tenant_a)
    kb = KnowledgeBase.objects.create(name="A's secrets")
    connection.set_schema_to_public()
    response = create(api_b, knowledge_bases=[kb.pk])
    assert response.status_code == 400
    assert "knowledge_bases" in response.json()["error"]["details"]
