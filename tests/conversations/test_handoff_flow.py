"""The handoff flow without sockets: asking for a person, the bot falling silent, failing
streaks, opening hours, agents' actions, and leads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from chatbot.models import Bot, Webhook, WebhookDelivery
from conversations import handoff, services
from conversations.models import Conversation, Message, SupportHours


@pytest.mark.parametrize(
    "text",
    [
        "Can I talk to a human?",
        "I want to speak to a real person please",
        "live agent",
        "chat with someone",
        "Kann ich mit einem Menschen sprechen?",
        "je veux parler à un conseiller",
        "quiero hablar con una persona",
    ],
)
def test_a_plain_request_for_a_person_is_recognised(text):
    assert handoff.wants_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do humans digest food?",
        "What does an agent fee cost?",
        "Who is the person in charge of refunds?",
    ],
)
def test_ordinary_questions_are_not_handoff_requests(text):
    assert not handoff.wants_human(text)


def chat(api, bot: Bot, message: str, conversation_id: str | None = None):  # type: ignore[no-untyped-def]
    body = {"message": message}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return api.post(
        f"/api/v1/bots/{bot.public_id}/chat/", body, content_type="application/json"
    ).json()


def test_asking_for_a_person_makes_the_conversation_wait_and_the_bot_silent(api_a, in_tenant_a):
    bot = Bot.objects.create(name="Support")
    Webhook.objects.create(name="crm", url="https://crm.example/h", events=["handoff.requested"])
    first = chat(api_a, bot, "Can I talk to a human?")
    assert first["status"]["status"] == "waiting" and first["answer"] == ""
    assert first["message_id"] is None
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    assert conversation.status == "waiting" and conversation.handoff_requested_at
    assert conversation.metadata["handoff_reason"] == "visitor asked"
    assert WebhookDelivery.objects.filter(event="handoff.requested").count() == 1
    second = chat(api_a, bot, "Hello? Anyone there?", first["conversation_id"])
    assert second["answer"] == "" and second["status"]["status"] == "waiting"
    roles = list(conversation.messages.values_list("role", flat=True))
    assert roles == ["user", "user"]  # the bot said nothing


def test_nobody_online_tells_the_visitor_and_takes_their_email(api_a, in_tenant_a):
    bot = Bot.objects.create(name="Support")
    body = chat(api_a, bot, "I want to speak to a person")
    status = body["status"]
    assert status["available"] is False and status["agents_online"] == 0
    assert "Leave your email" in status["message"]
    conversation = Conversation.objects.get(pk=body["conversation_id"])
    handoff.leave_lead(conversation, "visitor@example.com")
    conversation.refresh_from_db()
    assert conversation.lead_email == "visitor@example.com"
    with pytest.raises(ValidationError):
        handoff.leave_lead(conversation, "not an email")


def test_an_agent_online_within_hours_is_available(in_tenant_a):
    hours = SupportHours.objects.create(
        always_open=False, timezone="Europe/Berlin", hours={"mon": "09:00-17:00"}
    )
    monday_10_berlin = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    sunday = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    monday_night = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert handoff.is_open(hours, monday_10_berlin)
    assert not handoff.is_open(hours, sunday) and not handoff.is_open(hours, monday_night)
    handoff.heartbeat(4242)
    assert handoff.availability(monday_10_berlin)["available"] is True
    assert handoff.availability(sunday)["available"] is False
    handoff.heartbeat(4242, online=False)
    assert handoff.availability(monday_10_berlin)["agents_online"] == 0


def test_the_bot_hands_over_after_n_unanswered_questions_in_a_row(api_a, in_tenant_a):
    bot = Bot.objects.create(name="Support", handoff_after_failures=2)
    first = chat(api_a, bot, "What is the airspeed of a swallow?")
    assert first["answered"] is False and "status" not in first
    second = chat(api_a, bot, "And of a coconut?", first["conversation_id"])
    assert second["answered"] is False
    assert second["status"]["status"] == "waiting" and second["handoff"] is False
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    assert conversation.status == "waiting"
    assert conversation.metadata["handoff_reason"] == "2 unanswered in a row"


def test_agents_take_reply_and_hand_back(in_tenant_a):
    User = get_user_model()
    ann = User.objects.create_user("ann", is_staff=True, first_name="Ann")
    ben = User.objects.create_user("ben", is_staff=True)
    bot = Bot.objects.create(name="Support")
    conversation = Conversation.objects.create(bot=bot, visitor_id="v-12345678")
    services.add_user_message(conversation, "Help!")
    handoff.request(conversation)
    with pytest.raises(ValidationError):
        handoff.reply(conversation, ann, "not yet mine")
    handoff.take(conversation, ann)
    with pytest.raises(ValidationError):
        handoff.take(conversation, ben)  # Ann has it
    message = handoff.reply(conversation, ann, "Hi, I'm Ann. How can I help?")
    assert message.role == Message.Role.AGENT and message.author == ann
    assert handoff.message_item(message)["author"] == "Ann"
    handoff.release(conversation, ann)
    conversation.refresh_from_db()
    assert conversation.status == "bot" and conversation.agent is None
    assert [c.pk for c in handoff.queue()] == []
