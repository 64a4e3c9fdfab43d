"""Human handoff: a conversation waits for a person, an agent takes it and replies, and hands
it back to the bot or closes it; the bot stays silent meanwhile.

Every change is saved first and announced after commit through the channel layer: to the
conversation's group (`chat.<schema>.<id>`: the visitor's sockets) and to the tenant's staff
inbox group (`inbox.<schema>`: every agent's console). Both names carry the schema, so no
event crosses tenants. Functions here are synchronous and run in the tenant's schema.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from chatbot import webhooks
from chatbot.models import Webhook
from conversations import services
from conversations.models import WEEKDAYS, Conversation, Message, SupportHours

PRESENCE_TTL = 60  # seconds an agent's console counts as online after its last heartbeat

# "Can I talk to a human?", "speak to a real person", "agent please", in a few languages.
WANTS_HUMAN = re.compile(
    r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s*one|some\s+body|your\s+)?"
    r"(?:real\s+|live\s+)?(?:human|person|agent|someone|somebody|representative|operator)"
    r"|human\s+(?:agent|being|please)|real\s+person|live\s+(?:agent|chat|person)"
    r"|mit\s+einem\s+menschen|un(?:e)?\s+(?:humain|conseill(?:er|ère)|agent)"
    r"|hablar\s+con\s+(?:una\s+persona|un\s+agente|alguien))\b",
    re.IGNORECASE,
)


def wants_human(text: str) -> bool:
    return bool(WANTS_HUMAN.search(text))


# --- Groups and announcements -------------------------------------------------------------
def conversation_group(conversation_id: Any) -> str:
    return f"chat.{connection.schema_name}.{conversation_id}"


def inbox_group(schema_name: str | None = None) -> str:
    return f"inbox.{schema_name or connection.schema_name}"


def _send(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()

    def send() -> None:
        async_to_sync(layer.group_send)(group, event)

    transaction.on_commit(send)


def summary(conversation: Conversation) -> dict[str, Any]:
    """A conversation as the staff inbox shows it."""
    agent = conversation.agent
    return {
        "id": str(conversation.pk),
        "bot": conversation.bot.name,
        "title": conversation.title,
        "status": conversation.status,
        "channel": conversation.channel,
        "agent": display_name(agent) if agent else "",
        "agent_id": agent.pk if agent else None,
        "lead_email": conversation.lead_email,
        "waiting_since": _iso(conversation.handoff_requested_at),
        "last_message_at": _iso(conversation.last_message_at),
    }


def message_item(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "author": display_name(message.author) if message.author_id else "",
        "created_at": _iso(message.created_at),
    }


def display_name(user: Any) -> str:
    return (user.get_full_name() or user.get_username()).strip()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def announce_status(conversation: Conversation, **extra: Any) -> None:
    status = {"status": conversation.status, **extra}
    if conversation.agent_id:
        status["agent"] = display_name(conversation.agent)
    _send(conversation_group(conversation.pk), {"type": "chat.status", **status})
    _send(inbox_group(), {"type": "inbox.update", "conversation": summary(conversation)})


def announce_visitor_message(conversation: Conversation, message: Message) -> None:
    """A visitor wrote while a person handles (or is awaited for) the conversation."""
    _send(
        inbox_group(),
        {
            "type": "inbox.message",
            "conversation": summary(conversation),
            "message": message_item(message),
        },
    )


# --- Availability ---------------------------------------------------------------------------
def heartbeat(user_id: int, *, online: bool = True) -> None:
    key = f"presence:{connection.schema_name}"
    agents = {int(k): v for k, v in (cache.get(key) or {}).items() if v > time.time()}
    if online:
        agents[user_id] = time.time() + PRESENCE_TTL
    else:
        agents.pop(user_id, None)
    cache.set(key, agents, PRESENCE_TTL * 2)


def agents_online() -> int:
    agents = cache.get(f"presence:{connection.schema_name}") or {}
    return sum(1 for expires in agents.values() if expires > time.time())


def is_open(hours: SupportHours, now: datetime | None = None) -> bool:
    if hours.always_open:
        return True
    try:
        zone = ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = (now or timezone.now()).astimezone(zone)
    spans = str((hours.hours or {}).get(WEEKDAYS[local.weekday()], "") or "")
    clock = local.strftime("%H:%M")
    for span in spans.split(","):
        start, _, end = span.strip().partition("-")
        if start and end and start.strip() <= clock < end.strip():
            return True
    return False


def availability(now: datetime | None = None) -> dict[str, Any]:
    """Whether a person can answer now; if not, what to tell the visitor."""
    hours = SupportHours.current()
    open_now = is_open(hours, now)
    online = agents_online()
    available = open_now and online > 0
    return {
        "available": available,
        "open": open_now,
        "agents_online": online,
        "message": "" if available else hours.offline_message,
    }


# --- The flow -------------------------------------------------------------------------------
def request(
    conversation: Conversation, reason: str = "visitor", *, announce_visitor: bool = True
) -> dict[str, Any]:
    """The conversation now waits for a person (the visitor asked, or the bot kept failing).
    Returns the availability, which the visitor is told (by the caller when
    `announce_visitor` is false: it answers the asking socket itself)."""
    with transaction.atomic():
        if conversation.status in {Conversation.Status.BOT, Conversation.Status.CLOSED}:
            conversation.status = Conversation.Status.WAITING
            conversation.handoff_requested_at = timezone.now()
            conversation.metadata = {**conversation.metadata, "handoff_reason": reason}
            conversation.save(
                update_fields=["status", "handoff_requested_at", "metadata", "updated_at"]
            )
            webhooks.emit(
                Webhook.Event.HANDOFF_REQUESTED,
                {**webhooks.conversation_data(conversation), "reason": reason},
            )
        state = availability()
        if announce_visitor:
            announce_status(conversation, **state)
        else:
            _send(inbox_group(), {"type": "inbox.update", "conversation": summary(conversation)})
    return state


def take(conversation: Conversation, agent: Any) -> Conversation:
    if conversation.status == Conversation.Status.CLOSED:
        raise ValidationError("The conversation is closed.")
    if conversation.status == Conversation.Status.AGENT and conversation.agent_id != agent.pk:
        raise ValidationError(f"{display_name(conversation.agent)} has this conversation.")
    with transaction.atomic():
        conversation.status = Conversation.Status.AGENT
        conversation.agent = agent
        conversation.save(update_fields=["status", "agent", "updated_at"])
        announce_status(conversation)
    return conversation


def reply(conversation: Conversation, agent: Any, text: str) -> Message:
    text = services.clean_text(text)
    if conversation.status != Conversation.Status.AGENT or conversation.agent_id != agent.pk:
        raise ValidationError("Take the conversation before replying.")
    with transaction.atomic():
        message = services.add_agent_message(conversation, agent, text)
        item = message_item(message)
        _send(
            conversation_group(conversation.pk),
            {"type": "chat.agent_message", "message": item},
        )
        _send(
            inbox_group(),
            {"type": "inbox.message", "conversation": summary(conversation), "message": item},
        )
    return message


def release(conversation: Conversation, agent: Any) -> Conversation:
    """Hand the conversation back to the bot."""
    return _end(conversation, agent, Conversation.Status.BOT)


def close(conversation: Conversation, agent: Any) -> Conversation:
    return _end(conversation, agent, Conversation.Status.CLOSED)


def _end(conversation: Conversation, agent: Any, status: str) -> Conversation:
    if conversation.status == Conversation.Status.AGENT and conversation.agent_id != agent.pk:
        raise ValidationError(f"{display_name(conversation.agent)} has this conversation.")
    with transaction.atomic():
        conversation.status = status
        conversation.agent = None
        conversation.save(update_fields=["status", "agent", "updated_at"])
        announce_status(conversation)
    return conversation


def leave_lead(conversation: Conversation, email: str) -> Conversation:
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError("Enter a valid email address.") from None
    with transaction.atomic():
        conversation.lead_email = email
        conversation.save(update_fields=["lead_email", "updated_at"])
        _send(inbox_group(), {"type": "inbox.update", "conversation": summary(conversation)})
    return conversation


def failing_streak(conversation: Conversation, limit: int) -> bool:
    """The bot's last `limit` answers in this conversation all failed to answer."""
    if limit <= 0:
        return False
    latest = list(
        conversation.messages.filter(role=Message.Role.ASSISTANT)
        .order_by("-created_at")
        .values_list("answered", flat=True)[:limit]
    )
    return len(latest) == limit and not any(latest)


def queue() -> list[Conversation]:
    """The staff inbox: conversations waiting for a person or with one, oldest first."""
    return list(
        Conversation.objects.filter(
            status__in=[Conversation.Status.WAITING, Conversation.Status.AGENT]
        )
        .select_related("bot", "agent")
        .order_by("handoff_requested_at", "created_at")[:200]
    )
