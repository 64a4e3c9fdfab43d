"""Write paths of conversations: shared by the chat API, the visitor socket and the console.

Every function here is synchronous and runs in the caller's tenant schema; async callers go
through `chatbot.answering.in_tenant`, which sets the schema inside the worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chatbot import webhooks
from chatbot.llm import ChatMessage, estimate_tokens
from chatbot.models import Bot, Webhook
from conversations.models import Conversation, Message

MAX_MESSAGE_CHARS = 4000
MAX_HISTORY_MESSAGES = 50  # never read more rows than this, whatever the budget


class ConversationNotFound(Exception):
    """The id is unknown, or belongs to another bot or visitor: callers say 404."""


def start_or_resume(
    bot: Bot, conversation_id: str | None, *, visitor_id: str = "", channel: str = "api"
) -> tuple[Conversation, bool]:
    """The conversation to continue, or a new one. A visitor can only resume their own
    conversations with this bot; API clients (no visitor id) any of the bot's."""
    if conversation_id:
        found = Conversation.objects.filter(pk=uuid_or_none(conversation_id), bot=bot)
        if visitor_id:
            found = found.filter(visitor_id=visitor_id)
        conversation = found.first()
        if conversation is None:
            raise ConversationNotFound(conversation_id)
        return conversation, False
    conversation = Conversation.objects.create(bot=bot, visitor_id=visitor_id, channel=channel)
    webhooks.emit(Webhook.Event.CONVERSATION_STARTED, webhooks.conversation_data(conversation))
    return conversation, True


def uuid_or_none(value: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def clean_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"message": "The message is empty."})
    text = text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError(
            {"message": f"The message is longer than {MAX_MESSAGE_CHARS:,} characters."}
        )
    return text


def add_user_message(conversation: Conversation, text: str) -> Message:
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            content=text,
            tokens_in=estimate_tokens(text),
            tokens_estimated=True,
        )
        fields = {"last_message_at": now}
        if not conversation.title:
            fields["title"] = text[:200]
        Conversation.objects.filter(pk=conversation.pk).update(
            **fields, updated_at=now, message_count=F("message_count") + 1
        )
        for name, value in fields.items():
            setattr(conversation, name, value)
        _message_created(conversation, message)
    return message


def history(
    conversation: Conversation, budget_tokens: int, *, before: Message | None = None
) -> list[ChatMessage]:
    """The latest turns that fit the token budget, oldest first; the oldest are dropped
    first. Failed or empty answers are left out (they would teach the model nothing)."""
    rows = conversation.messages.exclude(content="").filter(error="")
    if before is not None:
        rows = rows.filter(created_at__lt=before.created_at).exclude(pk=before.pk)
    latest = list(
        rows.order_by("-created_at").values_list("role", "content")[:MAX_HISTORY_MESSAGES]
    )
    kept: list[ChatMessage] = []
    used = 0
    for role, content in latest:
        cost = estimate_tokens(content) + 4  # per-message framing
        if used + cost > budget_tokens:
            break
        used += cost
        kept.append(ChatMessage("user" if role == Message.Role.USER else "assistant", content))
    kept.reverse()
    # A history must open with the visitor (Anthropic requires it, and a lone answer
    # without its question misleads).
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def add_assistant_message(conversation: Conversation, **fields: Any) -> Message:
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, **fields
        )
        # The question this replies to records whether it got an answer: the analytics
        # group questions without pairing every message with the next one.
        question = (
            Message.objects.filter(
                conversation=conversation, role=Message.Role.USER, answered__isnull=True
            )
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
        if question:
            Message.objects.filter(pk=question).update(answered=bool(message.answered))
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=now,
            updated_at=now,
            message_count=F("message_count") + 1,
            unanswered_count=F("unanswered_count") + (0 if message.answered else 1),
        )
        _message_created(conversation, message)
    return message


def _message_created(conversation: Conversation, message: Message) -> None:
    webhooks.emit(
        Webhook.Event.MESSAGE_CREATED,
        {
            **webhooks.conversation_data(conversation),
            "message": {
                "id": str(message.pk),
                "role": message.role,
                "content": message.content,
                "answered": message.answered,
                "sources": message.sources,
                "created_at": message.created_at.isoformat(),
            },
        },
    )


def record_feedback(message: Message, rating: str, comment: str = "") -> Message:
    if rating not in {Message.Rating.UP, Message.Rating.DOWN}:
        raise ValidationError({"rating": 'Either "up" or "down".'})
    if message.role != Message.Role.ASSISTANT:
        raise ValidationError({"message": "Only answers can be rated."})
    with transaction.atomic():
        previous = (
            Message.objects.select_for_update().values_list("rating", flat=True).get(pk=message.pk)
        )
        message.rating = rating
        message.feedback_comment = (comment or "").strip()[:2000]
        message.rated_at = timezone.now()
        message.save(update_fields=["rating", "feedback_comment", "rated_at"])
        counters = {"up": "thumbs_up", "down": "thumbs_down"}
        changes = {counters[rating]: F(counters[rating]) + 1}
        if previous in counters:
            changes[counters[previous]] = F(counters[previous]) - 1
        if previous != rating:
            Conversation.objects.filter(pk=message.conversation_id).update(**changes)
        webhooks.emit(
            Webhook.Event.FEEDBACK_RECEIVED,
            {
                **webhooks.conversation_data(message.conversation),
                "message_id": str(message.pk),
                "rating": rating,
                "comment": message.feedback_comment,
            },
        )
    return message


def delete_conversations(conversations: Sequence[Conversation]) -> int:
    with transaction.atomic():
        count, _ = Conversation.objects.filter(pk__in=[c.pk for c in conversations]).delete()
    return count


def request_handoff(conversation: Conversation, reason: str = "visitor") -> Conversation:
    """The visitor asked for a person: see conversations.handoff.request (which also says
    whether anyone can answer now)."""
    from conversations import handoff

    handoff.request(conversation, reason)
    return conversation


def add_agent_message(conversation: Conversation, agent: Any, text: str) -> Message:
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation, role=Message.Role.AGENT, content=text, author=agent
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=now, updated_at=now, message_count=F("message_count") + 1
        )
        _message_created(conversation, message)
    return message
