"""`/ws/staff/inbox/`: the agents' live handoff inbox.

Staff of the tenant with `conversations.change_conversation` (owners and agents) connect
with their console session. On connect they get the queue (conversations waiting for a
person or with one); then every change arrives as it happens: a new request, a visitor's
message, a conversation taken, handed back or closed. Agents act over the same socket:

    client → {"type": "open", "conversation_id"}            → {"type": "transcript", ...}
             {"type": "take" | "release" | "close", "conversation_id"}
             {"type": "reply", "conversation_id", "text"}
             {"type": "heartbeat"}                           (presence: "an agent is online")
    server → {"type": "queue", "conversations": [...]}
             {"type": "update", "conversation": {...}}
             {"type": "message", "conversation": {...}, "message": {...}}
             {"type": "error", "code", "message"}

Every database call sets the tenant's schema inside its own thread (chatbot.answering's
`in_tenant`); the group carries the schema, so agents of tenant B never hear tenant A.
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ValidationError

from chatbot.answering import in_tenant
from conversations import handoff
from conversations.models import Conversation
from conversations.services import uuid_or_none

CLOSE_FORBIDDEN = 4403
PERMISSION = "conversations.change_conversation"


def _queue() -> list[dict[str, Any]]:
    return [handoff.summary(c) for c in handoff.queue()]


def _conversation(conversation_id: Any) -> Conversation:
    found = (
        Conversation.objects.select_related("bot", "agent")
        .filter(pk=uuid_or_none(str(conversation_id)))
        .first()
    )
    if found is None:
        raise ValidationError("No such conversation.")
    return found


def _transcript(conversation_id: Any) -> dict[str, Any]:
    conversation = _conversation(conversation_id)
    messages = conversation.messages.select_related("author").order_by("created_at")
    return {
        "type": "transcript",
        "conversation": handoff.summary(conversation),
        "messages": [handoff.message_item(m) for m in messages],
    }


def _act(action: str, conversation_id: Any, user: Any, text: str = "") -> None:
    conversation = _conversation(conversation_id)
    if action == "take":
        handoff.take(conversation, user)
    elif action == "reply":
        handoff.reply(conversation, user, text)
    elif action == "release":
        handoff.release(conversation, user)
    elif action == "close":
        handoff.close(conversation, user)


class StaffInboxConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope["user"]
        self.tenant = self.scope["tenant"]
        allowed = user.is_authenticated and user.is_staff and user.is_active
        if allowed:
            allowed = await in_tenant(self.tenant, user.has_perm, PERMISSION)
        await self.accept()
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.group = handoff.inbox_group(self.tenant.schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await in_tenant(self.tenant, handoff.heartbeat, user.pk)
        await self.send_json(
            {"type": "queue", "conversations": await in_tenant(self.tenant, _queue)}
        )

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await in_tenant(self.tenant, handoff.heartbeat, self.user.pk, online=False)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or "")
            kind = content["type"]
        except (ValueError, KeyError, TypeError):
            await self.send_error("bad_json", "Send JSON objects with a type.")
            return
        conversation_id = content.get("conversation_id")
        try:
            if kind == "heartbeat":
                await in_tenant(self.tenant, handoff.heartbeat, self.user.pk)
            elif kind == "open":
                await self.send_json(await in_tenant(self.tenant, _transcript, conversation_id))
            elif kind in {"take", "reply", "release", "close"}:
                text = str(content.get("text") or "")
                await in_tenant(self.tenant, _act, kind, conversation_id, self.user, text)
            else:
                await self.send_error("unknown_type", f"Unknown type {kind!r}.")
        except ValidationError as exc:
            await self.send_error("refused", " ".join(exc.messages))

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    # --- group events (conversations.handoff) -------------------------------------------
    async def inbox_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "update", "conversation": event["conversation"]})

    async def inbox_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "message", "conversation": event["conversation"], "message": event["message"]}
        )
