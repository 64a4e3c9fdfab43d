"""The audit log: who changed which bot, knowledge base, source or key, and what."""

from __future__ import annotations

from django.db import connection

from chatbot.models import ApiKey, AuditEntry, Bot
from knowledge.models import KnowledgeBase
from tests.chatbot.test_bot_admin import form_data


def test_a_console_change_to_a_bot_is_recorded_with_its_diff(alice_client, tenant_a):
    connection.set_tenant(tenant_a)
    bot = Bot.objects.create(name="Support")  # no actor: not audited
    assert not AuditEntry.objects.exists()
    kb = KnowledgeBase.objects.create(name="Docs")
    response = alice_client.post(
        f"/admin/chatbot/bot/{bot.pk}/change/",
        form_data(
            bot,
            name="Support bot",
            top_k="7",
            provider="openai",
            api_key="sk-audit-secret-123",
            knowledge_bases=[kb.pk],
        ),
    )
    assert response.status_code == 302
    connection.set_tenant(tenant_a)
    entries = list(AuditEntry.objects.filter(object_type="bot").order_by("id"))
    changed = entries[0]
    assert changed.actor == "alice" and changed.action == "changed"
    assert changed.object_repr == "Support bot" and changed.object_id == str(bot.pk)
    assert changed.changes["name"] == ["Support", "Support bot"]
    assert changed.changes["top_k"] == [5, 7]
    assert changed.changes["api_key"] == ["", "••••••"]  # recorded, never the value
    assert "sk-audit-secret-123" not in str([e.changes for e in entries])
    assert entries[1].changes == {"knowledge_bases": {"added": ["Docs"]}}
    page = alice_client.get("/admin/chatbot/auditentry/").content.decode()
    assert "Support bot" in page and "alice" in page
    detail = alice_client.get(f"/admin/chatbot/auditentry/{changed.pk}/change/")
    assert detail.status_code == 200 and "Support bot" in detail.content.decode()


def test_api_changes_are_recorded_under_the_key(api_a):
    created = api_a.post("/api/v1/bots/", {"name": "Helper"}, content_type="application/json")
    public_id = created.json()["id"]
    api_a.delete(f"/api/v1/bots/{public_id}/")
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor"))
    assert [a for a, _ in actions] == ["created", "deleted"]
    assert all(actor.startswith("API key tests (") for _, actor in actions)


def test_the_audit_log_is_read_only(alice_client, tenant_a):
    connection.set_tenant(tenant_a)
    entry = AuditEntry.objects.create(
        actor="alice", action="changed", object_type="bot", object_id="1", object_repr="x"
    )
    assert alice_client.get("/admin/chatbot/auditentry/add/").status_code == 403
    alice_client.post(f"/admin/chatbot/auditentry/{entry.pk}/delete/", {"post": "yes"})
    connection.set_tenant(tenant_a)
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_key_creation_and_revocation_are_recorded(alice_client, tenant_a):
    alice_client.post("/admin/chatbot/apikey/add/", {"name": "Zapier"})
    connection.set_tenant(tenant_a)
    key = ApiKey.objects.get(name="Zapier")
    alice_client.post(
        "/admin/chatbot/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
    )
    connection.set_tenant(tenant_a)
    entries = AuditEntry.objects.filter(object_type="API key").order_by("id")
    assert [e.action for e in entries] == ["created", "changed"]
    assert "revoked_at" in entries[1].changes
    assert entries[0].changes["key_hash"] == ["", "••••••"]


def test_charlie_cannot_read_tenant_a_audit_log(alice_client, charlie_client, tenant_a):
    connection.set_tenant(tenant_a)
    AuditEntry.objects.create(
        actor="alice", action="changed", object_type="bot", object_id="1", object_repr="Secret bot"
    )
    connection.set_schema_to_public()
    assert "Secret bot" not in charlie_client.get("/admin/chatbot/auditentry/").content.decode()
