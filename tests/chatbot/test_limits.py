"""Per-tenant quotas and per-key rate limits: 429 with Retry-After, the visitor's friendly
line, the next month resetting the quota, and the owner's usage page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from chatbot import limits
from chatbot.models import Bot
from conversations.models import Conversation, Message
from knowledge.models import Document, KnowledgeBase, Source
from tenants.models import Tenant


@pytest.fixture
def quota(tenant_a):
    """Set tenant A's limits for one test (the row is shared by the whole session)."""
    changed: dict[str, object] = {}

    def set_limits(**values):  # type: ignore[no-untyped-def]
        for name, value in values.items():
            changed.setdefault(name, getattr(tenant_a, name))
            setattr(tenant_a, name, value)
        Tenant.objects.filter(pk=tenant_a.pk).update(**values)
        cache.clear()

    yield set_limits
    if changed:
        Tenant.objects.filter(pk=tenant_a.pk).update(**changed)
    cache.clear()


def chat(api, bot: Bot, message: str = "Hello?"):  # type: ignore[no-untyped-def]
    return api.post(
        f"/api/v1/bots/{bot.public_id}/chat/", {"message": message}, content_type="application/json"
    )


def test_a_used_up_message_quota_gives_429_until_next_month(api_a, quota):
    quota(max_messages_per_month=2)
    bot = Bot.objects.create(name="Support")
    assert chat(api_a, bot).status_code == 200
    assert chat(api_a, bot).status_code == 200
    refused = chat(api_a, bot)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "quota_exceeded" and body["details"] == {"quota": "messages"}
    assert "limit" in body["message"]
    assert 0 < int(refused["Retry-After"]) <= 31 * 86400
    streamed = api_a.post(
        f"/api/v1/bots/{bot.public_id}/chat/",
        {"message": "again"},
        content_type="application/json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert streamed.status_code == 429
    assert Message.objects.filter(role="user").count() == 2  # nothing half-written
    # Next month: last month's messages no longer count.
    next_month = datetime.now(UTC).replace(day=1) + timedelta(days=32)
    cache.clear()
    with mock.patch("chatbot.limits.datetime") as fake:
        fake.now.return_value = next_month
        assert chat(api_a, bot).status_code == 200


def test_the_llm_token_quota_stops_llm_bots_only(in_tenant_a, api_a, quota):
    quota(max_llm_tokens_per_month=1000)
    llm_bot = Bot.objects.create(
        name="LLM", provider="openai_compatible", base_url="http://127.0.0.1:9/v1"
    )
    conversation = Conversation.objects.create(bot=llm_bot)
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        provider="openai",
        tokens_in=900,
        tokens_out=200,
    )
    refused = chat(api_a, llm_bot)
    assert (
        refused.status_code == 429 and refused.json()["error"]["details"]["quota"] == "llm_tokens"
    )
    offline = Bot.objects.create(name="Offline")
    assert chat(api_a, offline).status_code == 200  # the extractive bot calls no LLM


def test_an_api_key_is_rate_limited_with_retry_after(api_a, quota):
    quota(api_requests_per_minute=3)
    statuses = [api_a.get("/api/v1/bots/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api_a.get("/api/v1/bots/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "throttled"


def test_the_document_quota_is_checked(in_tenant_a, quota):
    quota(max_documents=1)
    limits.check_document_quota(connection.tenant, 1)
    with pytest.raises(limits.QuotaExceeded) as refused:
        limits.check_document_quota(connection.tenant, 2)
    assert "1 more fit" in refused.value.message


def test_the_owner_sees_usage_and_limits_but_an_agent_does_not(alice_client, in_tenant_a, quota):
    from chatbot.roles import invite
    from tests.conftest import HOST_A, logged_in_client

    quota(max_messages_per_month=100)
    bot = Bot.objects.create(name="Support")
    conversation = Conversation.objects.create(bot=bot)
    for n in range(3):
        Message.objects.create(conversation=conversation, role="user", content=f"q{n}")
    page = alice_client.get("/admin/limits/").content.decode()
    assert "Visitor messages this month" in page and "3%" in page and "unlimited" in page
    assert "Usage and limits" in alice_client.get("/admin/").content.decode()
    connection.set_tenant(in_tenant_a)
    invite("agent@example.com", "agent")
    agent = logged_in_client(in_tenant_a, HOST_A, "agent@example.com")
    assert agent.get("/admin/limits/").status_code == 403
    assert "Usage and limits" not in agent.get("/admin/").content.decode()


def test_tenant_b_usage_is_its_own(api_a, api_b, quota, tenant_a, tenant_b):
    quota(max_messages_per_month=1)
    connection.set_tenant(tenant_a)
    bot = Bot.objects.create(name="Support")
    assert chat(api_a, bot).status_code == 200
    connection.set_tenant(tenant_b)
    bot_b = Bot.objects.create(name="B's bot")
    connection.set_schema_to_public()
    assert chat(api_b, bot_b).status_code == 200  # A's quota is not B's


def test_the_knowledge_quota_refuses_documents_beyond_it(api_a, quota, drop_collections, settings):
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = "127.0.0.0/8"  # the crawl's start URL below
    quota(max_documents=2)
    kb = api_a.post(
        "/api/v1/knowledge-bases/", {"name": "Docs"}, content_type="application/json"
    ).json()
    drop_collections.append(KnowledgeBase.objects.get(pk=kb["id"]).collection_name)
    url = f"/api/v1/knowledge-bases/{kb['id']}/sources/"
    too_many = api_a.post(
        url,
        {"kind": "qa", "pairs": [{"question": f"q{n}?", "answer": f"a{n}"} for n in range(3)]},
        content_type="application/json",
    )
    assert too_many.status_code == 400
    assert "2 more fit" in too_many.json()["error"]["details"]["quota"][0]
    source = Source.objects.create(knowledge_base_id=kb["id"], kind="text", title="x")
    Document.objects.create(source=source, ref="1")
    crawl = api_a.post(
        url, {"kind": "crawl", "url": "http://127.0.0.1:9/docs/"}, content_type="application/json"
    )
    assert crawl.status_code == 201 and crawl.json()["config"]["max_pages"] == 1
    files = api_a.post(
        f"/api/v1/knowledge-bases/{kb['id']}/files/",
        {
            "file": [
                SimpleUploadedFile("a.txt", b"first file", "text/plain"),
                SimpleUploadedFile("b.txt", b"second file", "text/plain"),
            ]
        },
    )
    body = files.json()
    assert [s["title"] for s in body["sources"]] == ["a.txt"]
    assert body["errors"] == [{"file": "b.txt", "error": "The knowledge quota is used up."}]


def test_a_finished_sync_is_announced_to_webhooks(in_tenant_a, kb_a, run_on_commit):
    from chatbot.models import Webhook, WebhookDelivery
    from knowledge import services as knowledge

    Webhook.objects.create(
        name="ops", url="https://ops.example/h", events=["source.synced", "source.failed"]
    )
    source = run_on_commit(knowledge.add_text_source, kb_a, "Returns", "Returns within 30 days.")
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "source.synced"
    assert delivery.payload["data"]["source_id"] == source.pk
    assert delivery.payload["data"]["status"] == "ready"
