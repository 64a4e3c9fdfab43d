"""The visitor socket, `/ws/chat/<bot_public_id>/`: a visitor's questions in, streamed
answers out (docs/visitor-socket.md is the protocol; widget/protocol.py its shapes).

The tenant comes from the host (tenants.asgi); the bot is looked up in that tenant only,
and the page's `Origin` must be one the bot allows (widget/origins.py). Answers come from
`chatbot.answering.answer_stream`, run in an asyncio task started from `receive()` so that
the consumer still hears `stop` and disconnects while tokens stream (ARCHITECTURE.md,
"Channels x django-tenants"). Every database call goes through `answering.in_tenant`, which
sets the schema inside the worker thread.

Which thread: `in_tenant` runs thread-sensitive, and outside a `ThreadSensitiveContext`
asgiref sends every such call of the process to one shared thread, so all visitors' saves,
retrievals and query embeddings would queue behind each other (measured: docs/visitor-
socket.md, "Performance"). Each answer and request here therefore runs in a
`ThreadSensitiveContext` bound to one of a few long-lived single-thread "lanes" (the least
busy): one conversation's calls still run one at a time, in order, on one thread; different
visitors' calls run in parallel; each lane keeps its own database connection
(CONN_MAX_AGE), unlike a fresh thread per answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

from asgiref.sync import ThreadSensitiveContext
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from chatbot import limits
from chatbot.answering import STOPPED, answer_stream, in_tenant
from chatbot.models import Bot
from conversations import handoff
from conversations import services as conversations
from conversations.models import Conversation, Message
from tenants.asgi import header, host_without_port
from tenants.models import Domain
from widget import protocol
from widget.origins import allowed_origin
from widget.ratelimit import ahit, client_ip

log = logging.getLogger(__name__)

VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PUBLIC_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # Bot.public_id: token_urlsafe, 32 max
HISTORY_LIMIT = 200  # messages sent back on `resume`, the latest ones
# A frame is refused before it is parsed when even a fully escaped message could not be
# this long (JSON may spell each character as a 6-character \\uXXXX escape).
MAX_FRAME_CHARS = 6 * conversations.MAX_MESSAGE_CHARS + 4096
RATE_WINDOW_S = 60
STOP_TIMEOUT_S = 10  # how long stop/disconnect wait for the partial answer to be saved
CHANNELS = {"widget": Conversation.Channel.WIDGET, "page": Conversation.Channel.PAGE}


T = TypeVar("T")


class Lanes:
    """Long-lived single-thread executors for the sockets' database work (module doc)."""

    def __init__(self, size: int) -> None:
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"parley-socket-{n}")
            for n in range(size)
        ]
        self.load = [0] * size

    @asynccontextmanager
    async def lane(self) -> AsyncIterator[None]:
        n = min(range(len(self.load)), key=self.load.__getitem__)
        self.load[n] += 1
        try:
            async with ThreadSensitiveContext(executor=self.executors[n]):
                yield
        finally:
            self.load[n] -= 1


_lanes: Lanes | None = None


@asynccontextmanager
async def db_lane() -> AsyncIterator[None]:
    """Thread-sensitive calls inside run on one lane (on the shared thread when the
    PARLEY_SOCKET_DB_THREADS setting is 0)."""
    global _lanes
    if settings.PARLEY_SOCKET_DB_THREADS <= 0:
        yield
        return
    if _lanes is None or len(_lanes.load) != settings.PARLEY_SOCKET_DB_THREADS:
        _lanes = Lanes(settings.PARLEY_SOCKET_DB_THREADS)
    async with _lanes.lane():
        yield


class Refused(Exception):
    """A client message that cannot be served: sent back as an `error`, socket kept open."""

    def __init__(self, code: protocol.ErrorCode, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


# --- Database work (synchronous, run through in_tenant) ------------------------------------
def load_bot(tenant: Any, public_id: str) -> tuple[Bot, list[str]] | None:
    """The bot with this public id in the current tenant, and the tenant's host names."""
    bot = Bot.objects.filter(public_id=public_id).first()
    if bot is None:
        return None
    return bot, list(Domain.objects.filter(tenant_id=tenant.pk).values_list("domain", flat=True))


def _history_item(message: Message) -> protocol.HistoryMessage:
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "sources": message.sources if message.role == Message.Role.ASSISTANT else [],
        "rating": message.rating,
        "answered": message.answered,
        "created_at": message.created_at.isoformat(),
    }


def load_history(bot: Bot, conversation_id: str, visitor_id: str) -> protocol.HistoryOut:
    """The visitor's own conversation with this bot, latest messages last; raises
    ConversationNotFound for anyone else's (or another bot's, or another tenant's)."""
    conversation, _ = conversations.start_or_resume(bot, conversation_id, visitor_id=visitor_id)
    latest = conversation.messages.exclude(content="").order_by("-created_at")[:HISTORY_LIMIT]
    return {
        "type": "history",
        "conversation_id": str(conversation.pk),
        "status": conversation.status,
        "messages": [_history_item(m) for m in reversed(latest)],
    }


def rate_answer(bot: Bot, visitor_id: str, message_id: str, rating: str) -> Message | None:
    """Feedback on an answer in one of the visitor's conversations with this bot; None when
    the message is not one of those."""
    message_uuid = conversations.uuid_or_none(message_id)
    if message_uuid is None:
        return None
    message = Message.objects.filter(
        pk=message_uuid,
        role=Message.Role.ASSISTANT,
        conversation__bot=bot,
        conversation__visitor_id=visitor_id,
    ).first()
    return None if message is None else conversations.record_feedback(message, rating)


def hand_off(
    bot: Bot, conversation_id: str | None, visitor_id: str, channel: str
) -> tuple[str, dict[str, Any], bool]:
    """The visitor asks for a person (starting a conversation if there is none yet):
    (conversation id, the status to announce, whether the conversation was created). The
    consumer announces it to the visitor's sockets once it has joined their group."""
    conversation, created = conversations.start_or_resume(
        bot, conversation_id, visitor_id=visitor_id, channel=channel
    )
    state = handoff.request(conversation, reason="visitor asked", announce_visitor=False)
    return str(conversation.pk), {"status": conversation.status, **state}, created


def save_lead(bot: Bot, conversation_id: str | None, visitor_id: str, email: str) -> bool:
    conversation = Conversation.objects.filter(
        pk=conversations.uuid_or_none(conversation_id or ""), bot=bot, visitor_id=visitor_id
    ).first()
    if conversation is None:
        return False
    handoff.leave_lead(conversation, email)
    return True


def stopped_message_id(conversation_id: str, since: datetime) -> str | None:
    """The partial answer `answer_stream` saved when it was cancelled, if it got that far."""
    message = (
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.ASSISTANT,
            error=STOPPED,
            created_at__gte=since,
        )
        .order_by("-created_at")
        .first()
    )
    return str(message.pk) if message else None


# --- The consumer ----------------------------------------------------------------------------
class VisitorConsumer(AsyncWebsocketConsumer):
    bot: Bot | None = None
    tenant: Any
    visitor_id: str | None = None
    conversation_id: str | None = None
    group: str | None = None
    channel_kind: str = Conversation.Channel.PAGE
    ip: str = "unknown"
    answering: asyncio.Task[None] | None = None
    answer_started: datetime | None = None
    answer_finished = False  # `done` relayed: a late `stop` has nothing to stop

    async def connect(self) -> None:
        self.tenant = self.scope["tenant"]
        public_id = self.scope["url_route"]["kwargs"]["public_id"]
        found = None
        if PUBLIC_ID_RE.match(public_id):  # no database trip for what cannot be an id
            found = await self._db(load_bot, self.tenant, public_id)
        # Accept before closing: a refused handshake reaches a page as a bare 1006, and the
        # page must see 4403/4404 to know that reconnecting will not help.
        await self.accept()
        if found is None:
            await self.close(code=protocol.CLOSE_UNKNOWN_BOT)
            return
        bot, hosts = found
        hosts.append(host_without_port(header(self.scope, b"host")))
        if not allowed_origin(bot, header(self.scope, b"origin"), hosts):
            await self.close(code=protocol.CLOSE_FORBIDDEN_ORIGIN)
            return
        self.bot = bot
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.channel_kind = CHANNELS.get(query.get("channel", [""])[0], self.channel_kind)
        peer = self.scope.get("client")
        self.ip = client_ip(
            peer[0] if peer else None,
            header(self.scope, b"x-forwarded-for"),
            settings.PARLEY_TRUSTED_PROXY_COUNT,
        )

    async def disconnect(self, code: int) -> None:
        # Cancelling saves the partial answer (answer_stream does it, shielded); waiting
        # here keeps that save inside the consumer's lifetime.
        await self._cancel_answer()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.bot is None:  # closed in connect(); frames already in flight are dropped
            return
        try:
            content = self._parse(text_data)
            handler = self._handlers().get(content.get("type"))
            if handler is None:
                raise Refused("unknown_type", f"Unknown message type {content.get('type')!r}.")
            await handler(content)
        except Refused as refused:
            await self.send_error(refused.code, refused.message, refused.retry_after)
        except Exception:
            # A bug in one request must not take the visitor's socket (and answer) down.
            log.exception("visitor socket request failed for bot %s", self.bot.pk)
            await self.send_error("internal", "Something went wrong. Please try again.")

    def _handlers(self) -> dict[Any, Callable[[dict[str, Any]], Awaitable[None]]]:
        return {
            "message": self.on_message,
            "stop": self.on_stop,
            "feedback": self.on_feedback,
            "handoff": self.on_handoff,
            "resume": self.on_resume,
            "lead": self.on_lead,
        }

    @staticmethod
    def _parse(text_data: str | None) -> dict[str, Any]:
        if text_data is None:
            raise Refused("bad_json", "Send JSON text frames.")
        if len(text_data) > MAX_FRAME_CHARS:
            raise Refused("too_long", "The message is too long.")
        try:
            content = json.loads(text_data)
        except ValueError:
            raise Refused("bad_json", "Not valid JSON.") from None
        if not isinstance(content, dict):
            raise Refused("bad_json", "Send a JSON object with a type.")
        return content

    # --- client messages ------------------------------------------------------------------
    async def on_message(self, content: dict[str, Any]) -> None:
        self._bind_visitor(content.get("visitor_id"), required=True)
        conversation_id = self._conversation_id(content)
        if self._streaming():
            raise Refused("busy", "Please wait for the answer, or stop it, before asking again.")
        text = self._clean_text(content.get("text"))
        await self._limit(visitor=True)
        self.answer_started = timezone.now()
        self.answer_finished = False
        self.answering = asyncio.create_task(self._answer(text, conversation_id))

    async def on_stop(self, content: dict[str, Any]) -> None:
        if not self._streaming():
            return  # nothing streaming: the answer finished as the visitor pressed stop
        await self._cancel_answer()
        message_id = None
        if self.conversation_id and self.answer_started:
            message_id = await self._db(
                stopped_message_id, self.conversation_id, self.answer_started
            )
        done: protocol.DoneOut = {
            "type": "done",
            "message_id": message_id,
            "answered": False,
            "handoff": False,
            "stopped": True,
        }
        await self.send_json(done)

    async def on_feedback(self, content: dict[str, Any]) -> None:
        visitor_id = self._bind_visitor(content.get("visitor_id"))
        if visitor_id is None:
            raise Refused("no_conversation", "Send a message or resume a conversation first.")
        message_id, rating = content.get("message_id"), content.get("rating")
        if not isinstance(message_id, str) or rating not in {"up", "down"}:
            raise Refused("invalid", 'Feedback needs a message_id and a rating "up" or "down".')
        await self._limit()
        rated = await self._db(rate_answer, self.bot, visitor_id, message_id, rating)
        if rated is None:
            raise Refused("not_found", "No such answer in your conversations.")
        await self.send_json({"type": "rated", "message_id": message_id, "rating": rating})

    async def on_handoff(self, content: dict[str, Any]) -> None:
        visitor_id = self._bind_visitor(content.get("visitor_id"))
        conversation_id = self._conversation_id(content)
        if visitor_id is None:
            raise Refused("no_conversation", "Send a message or resume a conversation first.")
        await self._limit()
        try:
            conversation_id, state, created = await self._db(
                hand_off, self.bot, conversation_id, visitor_id, self.channel_kind
            )
        except conversations.ConversationNotFound:
            raise Refused("not_found", "No such conversation.") from None
        if created:
            await self.send_json({"type": "conversation", "id": conversation_id})
        await self._join(conversation_id)
        # Through the group: the visitor's other tabs hear it too (the staff inbox was told
        # by conversations.handoff).
        event: protocol.StatusEvent = {"type": "chat.status", **state}
        await self.channel_layer.group_send(self.group, event)

    async def on_lead(self, content: dict[str, Any]) -> None:
        visitor_id = self._bind_visitor(content.get("visitor_id"))
        if visitor_id is None or not self.conversation_id:
            raise Refused("no_conversation", "Ask for a person first.")
        email = content.get("email")
        if not isinstance(email, str) or len(email) > 254:
            raise Refused("invalid", "Send an email address.")
        await self._limit()
        try:
            saved = await self._db(save_lead, self.bot, self.conversation_id, visitor_id, email)
        except ValidationError as exc:
            raise Refused("invalid", " ".join(exc.messages)) from None
        if not saved:
            raise Refused("not_found", "No such conversation.")
        await self.send_json({"type": "lead", "saved": True})

    async def on_resume(self, content: dict[str, Any]) -> None:
        visitor_id = self._bind_visitor(content.get("visitor_id"), required=True)
        conversation_id = content.get("conversation_id")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise Refused("invalid", "Resuming needs a conversation_id.")
        if self._streaming():
            raise Refused("busy", "Please wait for the answer, or stop it, before resuming.")
        await self._limit()
        try:
            history = await self._db(load_history, self.bot, conversation_id, visitor_id)
        except conversations.ConversationNotFound:
            raise Refused("not_found", "No such conversation.") from None
        await self._join(history["conversation_id"])
        await self.send_json(history)

    # --- checks -------------------------------------------------------------------------
    def _bind_visitor(self, value: Any, *, required: bool = False) -> str | None:
        """One visitor per socket: the first valid visitor_id sticks; another is refused."""
        if value in (None, ""):
            if required and self.visitor_id is None:
                raise Refused("invalid", "A visitor_id is required.")
            return self.visitor_id
        if not isinstance(value, str) or not VISITOR_ID_RE.match(value):
            raise Refused("invalid", "visitor_id: 8 to 64 letters, digits, - or _.")
        if self.visitor_id is not None and value != self.visitor_id:
            raise Refused("invalid", "This socket already belongs to another visitor_id.")
        self.visitor_id = value
        return value

    def _conversation_id(self, content: dict[str, Any]) -> str | None:
        value = content.get("conversation_id")
        if value in (None, ""):
            return self.conversation_id  # the socket's current conversation, if any
        if not isinstance(value, str):
            raise Refused("invalid", "conversation_id must be a string.")
        return value

    @staticmethod
    def _clean_text(text: Any) -> str:
        limit = conversations.MAX_MESSAGE_CHARS
        if isinstance(text, str) and len(text.strip()) > limit:
            raise Refused("too_long", f"Messages are limited to {limit:,} characters.")
        try:
            return conversations.clean_text(text)
        except ValidationError:
            raise Refused("empty", "The message is empty.") from None

    async def _limit(self, *, visitor: bool = False) -> None:
        """Per-IP limit on every request that reaches the database; per-visitor limit on
        questions. Keys carry the schema: tenants never share a budget."""
        schema = self.tenant.schema_name
        checks = [(f"{schema}:ip:{self.ip}", settings.PARLEY_IP_REQUESTS_PER_MINUTE)]
        if visitor:
            limit = settings.PARLEY_VISITOR_MESSAGES_PER_MINUTE
            checks.append((f"{schema}:visitor:{self.visitor_id}", limit))
        for key, limit in checks:
            allowed, retry_after = await ahit(key, limit, RATE_WINDOW_S)
            if not allowed:
                raise Refused(
                    "rate_limited",
                    f"Too many messages. Please try again in {retry_after} seconds.",
                    retry_after,
                )

    # --- answering ------------------------------------------------------------------------
    async def _answer(self, text: str, conversation_id: str | None) -> None:
        assert self.bot is not None and self.visitor_id is not None
        events = answer_stream(
            tenant=self.tenant,
            bot_id=self.bot.pk,
            text=text,
            visitor_id=self.visitor_id,
            channel=self.channel_kind,
            conversation_id=conversation_id,
        )
        try:
            # aclosing: a cancel that lands while this task awaits a send still closes the
            # generator here and now, so the partial answer is saved before we return.
            async with db_lane(), aclosing(events) as stream:
                async for event in stream:
                    await self._relay(event)
        except conversations.ConversationNotFound:
            await self.send_error("not_found", "No such conversation.")
        except limits.QuotaExceeded as exc:
            await self.send_error("quota_exceeded", exc.message, exc.retry_after or 0)
        except Exception:
            log.exception("answering failed for bot %s", self.bot.pk)
            await self.send_error("internal", "Something went wrong. Please try again.")

    async def _relay(self, event: dict[str, Any]) -> None:
        if event["type"] == "conversation":
            await self._join(event["id"])
        elif event["type"] == "done":
            event = {**event, "stopped": False}
            self.answer_finished = True
        await self.send_json(event)

    def _streaming(self) -> bool:
        # Once `done` is out the answer is over, even if its task has yet to return.
        task = self.answering
        return task is not None and not task.done() and not self.answer_finished

    async def _cancel_answer(self) -> None:
        task = self.answering
        if task is None or task.done():
            return
        task.cancel()
        # asyncio.wait, not await: the task's CancelledError must not look like our own.
        await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)

    async def _join(self, conversation_id: str) -> None:
        group = protocol.conversation_group(self.tenant.schema_name, conversation_id)
        if group == self.group:
            return
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.channel_layer.group_add(group, self.channel_name)
        self.group, self.conversation_id = group, conversation_id

    async def _db(self, func: Callable[..., T], *args: Any) -> T:
        async with db_lane():
            return await in_tenant(self.tenant, func, *args)

    # --- server messages ------------------------------------------------------------------
    async def send_json(self, payload: protocol.ServerMessage | dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, ensure_ascii=False))

    async def send_error(
        self, code: protocol.ErrorCode, message: str, retry_after: int = 0
    ) -> None:
        error: protocol.ErrorOut = {"type": "error", "code": code, "message": message}
        if retry_after:
            error["retry_after"] = retry_after
        await self.send_json(error)

    # --- channel-layer group events (the handoff flow sends these) -----------------------
    async def chat_agent_message(self, event: protocol.AgentMessageEvent) -> None:
        await self.send_json({"type": "agent_message", "message": event["message"]})

    async def chat_status(self, event: protocol.StatusEvent) -> None:
        # The status and what goes with it: the agent's name, or whether anyone can answer.
        await self.send_json({**event, "type": "status"})
