"""Visitor socket fixtures: committed bots and knowledge (WebSocket tests run outside the
per-test transaction, see docs/architecture.md), a fake LLM vendor, and a small client
that drives `WebsocketCommunicator` through the full ASGI application."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django_tenants.utils import schema_context

from chatbot.asgi import application
from chatbot.celery import app as celery_app
from chatbot.models import Bot
from knowledge import services as knowledge
from knowledge.models import KnowledgeBase
from tests.conftest import HOST_A, HOST_B
from tests.fakes.llm_server import FakeLLMServer

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
ORIGINS = "https://shop.example.com\nhttps://*.partner.example\nhttp://localhost:3000"


@dataclass
class Site:
    bot: Bot  # tenant A, extractive, answers from the handbook
    llm_bot: Bot  # tenant A, openai_compatible against the fake vendor
    bot_b: Bot  # tenant B's bot
    llm: FakeLLMServer


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker) -> Iterator[Site]:
    """Bots of tenants A and B and an ingested handbook, committed for the module, removed
    after. Ingestion runs eagerly in this process."""
    with FakeLLMServer() as llm:
        with django_db_blocker.unblock():
            made = _make_site(llm)
        yield made
        with django_db_blocker.unblock():
            with schema_context("tenant_a"):
                kb = made.bot.knowledge_bases.get()
                Bot.objects.filter(pk__in=[made.bot.pk, made.llm_bot.pk]).delete()
                knowledge.delete_knowledge_base(kb)  # drops its Chroma collection too
            with schema_context("tenant_b"):
                made.bot_b.delete()


def _make_site(llm: FakeLLMServer) -> Site:
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    try:
        with schema_context("tenant_a"):
            kb = KnowledgeBase.objects.create(name="Socket handbook")
            knowledge.add_text_source(kb, "Refund policy", REFUNDS)
            knowledge.add_text_source(kb, "Shipping", SHIPPING)
            bot = Bot.objects.create(name="Shop helper", allowed_origins=ORIGINS)
            llm_bot = Bot.objects.create(
                name="LLM helper",
                provider=Bot.Provider.OPENAI_COMPATIBLE,
                base_url=llm.openai_url,
                model="fake",
            )
            for each in (bot, llm_bot):
                each.knowledge_bases.set([kb])
        with schema_context("tenant_b"):
            bot_b = Bot.objects.create(name="Charlie's bot")
    finally:
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_eager_propagates = False
    return Site(bot, llm_bot, bot_b, llm)


def visitor_id() -> str:
    return secrets.token_urlsafe(12)


def random_ip() -> str:
    return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))


class Visitor:
    """One visitor's socket: JSON in and out, plus helpers to read an answer."""

    def __init__(self, communicator: WebsocketCommunicator, vid: str) -> None:
        self.ws = communicator
        self.id = vid

    async def send(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        await self.ws.send_to(text_data=text)

    async def ask(self, text: str, **extra: Any) -> None:
        await self.send({"type": "message", "text": text, "visitor_id": self.id, **extra})

    async def receive(self, timeout: float = 20) -> dict[str, Any]:
        return await self.ws.receive_json_from(timeout=timeout)

    async def until_done(self, timeout: float = 30) -> list[dict[str, Any]]:
        events = []
        while not events or events[-1]["type"] != "done":
            events.append(await self.receive(timeout))
        return events

    async def closed_with(self) -> int:
        output = await self.ws.receive_output(timeout=5)
        assert output["type"] == "websocket.close", output
        return output["code"]

    async def quiet(self) -> bool:
        return await self.ws.receive_nothing(timeout=0.2)

    async def close(self) -> None:
        await self.ws.disconnect()


async def open_visitor(
    bot: Bot | str,
    *,
    host: str = HOST_A,
    origin: str | None = "http://a.localhost",
    ip: str | None = None,
    vid: str | None = None,
    query: str = "",
) -> Visitor:
    public_id = bot if isinstance(bot, str) else bot.public_id
    headers = [(b"host", host.encode()), (b"x-forwarded-for", (ip or random_ip()).encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    path = f"/ws/chat/{public_id}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    visitor = Visitor(communicator, vid or visitor_id())
    if not connected:
        visitor.refused_code = code  # type: ignore[attr-defined]
    return visitor


@pytest.fixture
def ws(
    django_db_setup, django_db_blocker, settings
) -> Iterator[Callable[[Callable[[], Awaitable[Any]]], Any]]:
    """Run async scenarios against the ASGI app. Consumers reach the database from other
    threads and outside any transaction, so these tests work on committed rows with the
    database open for the test (as tests/conftest.py's `committed_session` does). Each
    socket comes from its own address (X-Forwarded-For behind one trusted proxy), so that
    per-IP budgets never carry over between tests or runs."""
    settings.PARLEY_TRUSTED_PROXY_COUNT = 1

    def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
        return async_to_sync(scenario)()

    with django_db_blocker.unblock():
        yield run


__all__ = ["HOST_A", "HOST_B", "Site", "Visitor", "open_visitor", "visitor_id"]
