"""Every console changelist runs a bounded number of queries: more rows, no more queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatbot.models import ApiKey, AuditEntry, Bot
from chatbot.roles import invite
from conversations import services as conversations
from conversations.models import Conversation
from knowledge.models import Document, KnowledgeBase, Source


def add_rows(n: int, offset: int) -> None:
    kb = KnowledgeBase.objects.create(name=f"KB {offset}")
    for i in range(offset, offset + n):
        bot = Bot.objects.create(name=f"Bot {i}")
        bot.knowledge_bases.set([kb])
        source = Source.objects.create(knowledge_base=kb, kind="text", title=f"S {i}")
        Document.objects.create(source=source, ref=f"r{i}", title=f"D {i}")
        ApiKey.generate(f"key {i}")
        AuditEntry.objects.create(
            actor="alice", action="changed", object_type="bot", object_id=str(i), object_repr="b"
        )
        conversation = Conversation.objects.create(bot=bot, channel="widget")
        conversations.add_user_message(conversation, f"question {i}")
        invite(f"staff{i}@example.com", "agent")


def queries(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/chatbot/bot/",
        "/admin/chatbot/apikey/",
        "/admin/chatbot/auditentry/",
        "/admin/knowledge/knowledgebase/",
        "/admin/knowledge/source/",
        "/admin/knowledge/document/",
        "/admin/conversations/conversation/",
        "/admin/auth/user/",
        "/admin/auth/group/",
    ],
)
def test_a_changelist_does_not_query_per_row(alice_client, in_tenant_a, url):
    add_rows(2, 0)
    queries(alice_client, url)  # warm-up: content types, permissions
    few = queries(alice_client, url)
    connection.set_tenant(in_tenant_a)
    add_rows(8, 2)
    assert queries(alice_client, url) <= few, url
    assert few <= 20, url
