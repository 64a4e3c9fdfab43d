"""The chat API with the offline extractive bot: answers with citations, refusals, server-sent
events, conversations, feedback, and tenant isolation."""

from __future__ import annotations

import json

import pytest

from chatbot.models import Bot
from conversations.models import Conversation, Message
from knowledge import services as knowledge

REFUNDS = (
    "Refund policy\n\n"
    "Customers can request a refund within 30 days of delivery. To request a refund, open "
    "the Orders page, choose the order and press Request refund. Refunds are paid back to "
    "the original payment method within five business days.\n\n"
    "Damaged items are replaced free of charge; send a photo of the damage to "
    "support@example.com."
)
SHIPPING = (
    "Shipping\n\nWe ship to every country in the European Union. Standard delivery takes "
    "three to five business days; express delivery arrives the next business day."
)


@pytest.fixture
def handbook(kb_a, run_on_commit):
    run_on_commit(knowledge.add_text_source, kb_a, "Refund policy", REFUNDS)
    run_on_commit(knowledge.add_text_source, kb_a, "Shipping", SHIPPING)
    return kb_a


@pytest.fixture
def bot(handbook) -> Bot:
    bot = Bot.objects.create(name="Shop helper")
    bot.knowledge_bases.set([handbook])
    return bot


def chat(api, bot: Bot, message: str, **extra):  # type: ignore[no-untyped-def]
    return api.post(
        f"/api/v1/bots/{bot.public_id}/chat/",
        {"message": message, **extra},
        content_type="application/json",
    )


def test_the_extractive_bot_answers_from_passages_with_citations(api_a, bot):
    response = chat(api_a, bot, "How do I request a refund?")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["answered"] is True
    assert "Request refund" in body["answer"] or "refund" in body["answer"].lower()
    assert "[1]" in body["answer"]
    assert body["sources"][0]["number"] == 1
    assert body["sources"][0]["title"] == "Refund policy"
    assert body["sources"][0]["snippet"]
    message = Message.objects.get(pk=body["message_id"])
    assert message.role == "assistant" and message.answered is True
    assert message.provider == "extractive" and message.tokens_estimated
    assert message.tokens_out > 0 and message.latency_ms is not None
    assert message.ttft_ms is not None and message.ttft_ms <= message.latency_ms
    assert message.sources == body["sources"]
    conversation = Conversation.objects.get(pk=body["conversation_id"])
    assert conversation.channel == "api" and conversation.title == "How do I request a refund?"
    assert [m.role for m in conversation.messages.all()] == ["user", "assistant"]


def test_an_off_topic_question_gets_the_fallback_and_a_handoff_offer(api_a, bot):
    body = chat(api_a, bot, "What is the best recipe for lasagna?").json()
    assert body["answered"] is False and body["handoff"] is True
    assert body["answer"] == bot.fallback_message
    assert body["sources"] == []
    assert Message.objects.get(pk=body["message_id"]).answered is False


def test_a_conversation_continues_with_its_id(api_a, bot):
    first = chat(api_a, bot, "How do I request a refund?").json()
    second = chat(
        api_a, bot, "How long does delivery take?", conversation_id=first["conversation_id"]
    )
    assert second.json()["conversation_id"] == first["conversation_id"]
    assert Conversation.objects.get().messages.count() == 4
    unknown = chat(api_a, bot, "Hi", conversation_id="00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404


# The test client reads the async stream synchronously, and says so.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
def test_the_chat_streams_as_server_sent_events(api_a, bot):
    response = api_a.post(
        f"/api/v1/bots/{bot.public_id}/chat/",
        {"message": "How long does express delivery take?"},
        content_type="application/json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    raw = b"".join(response).decode()  # consumes the async stream
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "conversation" and kinds[-2:] == ["sources", "done"]
    assert kinds.count("token") > 1  # streamed, not one block
    answer = "".join(e["text"] for e in events if e["type"] == "token")
    assert "next business day" in answer
    done = events[-1]
    assert done["answered"] is True
    assert Message.objects.get(pk=done["message_id"]).content == answer


def test_invalid_chat_input_gets_a_precise_400(api_a, bot):
    empty = chat(api_a, bot, "   ")
    assert empty.status_code == 400 and "message" in empty.json()["error"]["details"]
    long = chat(api_a, bot, "x" * 5000)
    assert long.status_code == 400
    bad_json = api_a.post(
        f"/api/v1/bots/{bot.public_id}/chat/", "{nope", content_type="application/json"
    )
    assert bad_json.status_code == 400
    assert not Message.objects.exists()


def test_conversations_are_listed_filtered_shown_and_deleted(
    api_a, bot, django_assert_max_num_queries
):
    other = Bot.objects.create(name="Other")
    first = chat(api_a, bot, "How do I request a refund?").json()
    chat(api_a, other, "Hello?")
    with django_assert_max_num_queries(6):
        listed = api_a.get("/api/v1/conversations/").json()
    assert listed["count"] == 2
    only = api_a.get(f"/api/v1/conversations/?bot={bot.public_id}").json()["results"]
    assert [c["id"] for c in only] == [first["conversation_id"]]
    assert only[0]["bot"] == bot.public_id and only[0]["message_count"] == 2
    detail = api_a.get(f"/api/v1/conversations/{first['conversation_id']}/").json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    assert detail["messages"][1]["sources"][0]["title"] == "Refund policy"
    assert api_a.get("/api/v1/conversations/not-a-uuid/").status_code == 404
    assert api_a.delete(f"/api/v1/conversations/{first['conversation_id']}/").status_code == 204
    assert not Message.objects.filter(conversation_id=first["conversation_id"]).exists()


def test_feedback_is_stored_on_the_answer(api_a, bot):
    answer = chat(api_a, bot, "How do I request a refund?").json()
    response = api_a.post(
        f"/api/v1/messages/{answer['message_id']}/feedback/",
        {"rating": "down", "comment": "Too short"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=answer["message_id"])
    assert message.rating == "down" and message.feedback_comment == "Too short"
    assert message.rated_at is not None
    bad = api_a.post(
        f"/api/v1/messages/{answer['message_id']}/feedback/",
        {"rating": "meh"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    question = Message.objects.get(role="user")
    refused = api_a.post(
        f"/api/v1/messages/{question.pk}/feedback/",
        {"rating": "up"},
        content_type="application/json",
    )
    assert refused.status_code == 400  # only answers are rated


def test_charlie_cannot_reach_tenant_a_conversations(api_a, api_b, bot):
    answer = chat(api_a, bot, "How do I request a refund?").json()
    assert api_b.get("/api/v1/conversations/").json()["results"] == []
    assert api_b.get(f"/api/v1/conversations/{answer['conversation_id']}/").status_code == 404
    assert api_b.delete(f"/api/v1/conversations/{answer['conversation_id']}/").status_code == 404
    feedback = api_b.post(
        f"/api/v1/messages/{answer['message_id']}/feedback/",
        {"rating": "down"},
        content_type="application/json",
    )
    assert feedback.status_code == 404
    assert chat(api_b, bot, "How do I request a refund?").status_code == 404
