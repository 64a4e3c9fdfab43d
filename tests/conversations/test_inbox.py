"""The conversation inbox: filters, text search, transcripts, bounded queries, isolation."""

from __future__ import annotations

import pytest
from django.db import connection

from chatbot.models import Bot
from conversations import services
from conversations.models import Conversation

INBOX = "/admin/conversations/conversation/"


def converse(bot: Bot, question: str, answer: str, *, answered: bool = True, channel="widget"):  # type: ignore[no-untyped-def]
    conversation = Conversation.objects.create(bot=bot, visitor_id="v-123456", channel=channel)
    services.add_user_message(conversation, question)
    reply = services.add_assistant_message(
        conversation,
        content=answer,
        answered=answered,
        provider="extractive",
        latency_ms=120,
        ttft_ms=40,
        tokens_in=300,
        tokens_out=42,
        sources=[
            {
                "number": 1,
                "title": "Refund policy",
                "url": "https://shop.example/refunds",
                "heading_path": ["Refunds"],
                "snippet": "Refunds within 30 days",
                "score": 0.71,
            }
        ]
        if answered
        else [],
    )
    return conversation, reply


@pytest.fixture
def inbox(in_tenant_a):
    support = Bot.objects.create(name="Support")
    sales = Bot.objects.create(name="Sales")
    refund, refund_answer = converse(support, "How do I get a refund?", "Open Orders [1].")
    lasagna, _ = converse(support, "Best lasagna recipe?", "Sorry, I don't know.", answered=False)
    pricing, pricing_answer = converse(
        sales, "What does the pro plan cost?", "20 € [1].", channel="page"
    )
    services.record_feedback(refund_answer, "up")
    services.record_feedback(pricing_answer, "down", "wrong price")
    return {
        "support": support,
        "sales": sales,
        "refund": refund,
        "lasagna": lasagna,
        "pricing": pricing,
    }


def titles(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.title for c in response.context["cl"].result_list}


def test_the_inbox_lists_conversations_with_counters(alice_client, inbox):
    response = alice_client.get(INBOX)
    assert response.status_code == 200
    assert titles(response) == {
        "How do I get a refund?",
        "Best lasagna recipe?",
        "What does the pro plan cost?",
    }
    page = response.content.decode()
    assert "1 unanswered" in page and "👎 1" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("answered=no", {"Best lasagna recipe?"}),
        ("answered=yes", {"How do I get a refund?", "What does the pro plan cost?"}),
        ("feedback=down", {"What does the pro plan cost?"}),
        ("feedback=up", {"How do I get a refund?"}),
        ("feedback=none", {"Best lasagna recipe?"}),
        ("channel__exact=page", {"What does the pro plan cost?"}),
        ("q=open+orders", {"How do I get a refund?"}),  # the bot's words are searched too
        ("q=LASAGNA", {"Best lasagna recipe?"}),
    ],
)
def test_the_inbox_filters_and_searches(alice_client, inbox, query, expected):
    assert titles(alice_client.get(f"{INBOX}?{query}")) == expected


def test_the_inbox_filters_by_bot_and_date(alice_client, inbox):
    sales = inbox["sales"]
    assert titles(alice_client.get(f"{INBOX}?bot__id__exact={sales.pk}")) == {
        "What does the pro plan cost?"
    }
    since_2000 = "2000-01-01T00:00:00%2B00:00"
    assert len(titles(alice_client.get(f"{INBOX}?created_at__gte={since_2000}"))) == 3
    assert titles(alice_client.get(f"{INBOX}?created_at__lt={since_2000}")) == set()


def test_the_inbox_runs_a_bounded_number_of_queries(
    alice_client, inbox, in_tenant_a, django_assert_max_num_queries
):
    alice_client.get(INBOX)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12) as captured:
        alice_client.get(INBOX)
    baseline = len(captured.captured_queries)
    bot = inbox["support"]
    connection.set_tenant(in_tenant_a)
    for n in range(20):
        converse(bot, f"Question number {n}?", "Answer [1].")
    with django_assert_max_num_queries(baseline):
        alice_client.get(INBOX)


def test_a_transcript_shows_sources_latency_tokens_and_feedback(alice_client, inbox):
    pricing = inbox["pricing"]
    page = alice_client.get(f"{INBOX}{pricing.pk}/change/").content.decode()
    assert "What does the pro plan cost?" in page and "20 € [1]." in page
    assert "https://shop.example/refunds" in page and "Refund policy" in page
    assert "120 ms" in page and "first token 40 ms" in page
    assert "300 in / 42 out" in page
    assert "wrong price" in page and 'title="thumbs down"' in page


def test_visitor_text_is_escaped_in_the_console(alice_client, in_tenant_a):
    bot = Bot.objects.create(name="Support")
    conversation, _ = converse(bot, "<script>alert(1)</script>", "<img src=x onerror=alert(2)>")
    listing = alice_client.get(INBOX).content.decode()
    transcript = alice_client.get(f"{INBOX}{conversation.pk}/change/").content.decode()
    for page in (listing, transcript):
        assert "<script>alert(1)</script>" not in page
    assert "<img src=x onerror=alert(2)>" not in transcript
    assert "&lt;img src=x onerror=alert(2)&gt;" in transcript


def test_charlie_sees_none_of_tenant_a_conversations(charlie_client, inbox):
    response = charlie_client.get(INBOX)
    assert response.status_code == 200 and titles(response) == set()
    assert charlie_client.get(f"{INBOX}{inbox['refund'].pk}/change/").status_code in {302, 404}
