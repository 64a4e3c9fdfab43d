"""Handoff end to end with two sockets, a visitor's and an agent's: the request, the agent
taking it, messages both ways, the bot silent, the hand-back; and tenant B's agent neither
sees nor joins tenant A's conversations."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from chatbot.asgi import application
from chatbot.roles import invite
from conversations.models import Conversation, Message
from tests.conftest import HOST_A, HOST_B
from tests.widget.conftest import Site, open_visitor

AGENT = "dana@example.com"


@pytest.fixture
def agent_cookie(committed_session, django_db_blocker):
    with django_db_blocker.unblock(), schema_context("tenant_a"):
        user = invite(AGENT, "agent").user
        user.first_name = "Dana"
        user.save(update_fields=["first_name"])
    yield committed_session("tenant_a", AGENT)
    with django_db_blocker.unblock(), schema_context("tenant_a"):
        get_user_model().objects.filter(username=AGENT).delete()


async def open_agent(cookie: str, host: str = HOST_A) -> WebsocketCommunicator:
    headers = [
        (b"host", host.encode()),
        (b"origin", f"http://{host}".encode()),
        (b"cookie", cookie.encode()),
    ]
    agent = WebsocketCommunicator(application, "/ws/staff/inbox/", headers=headers)
    connected, _ = await agent.connect(timeout=10)
    assert connected
    return agent


async def next_of(agent: WebsocketCommunicator, kind: str, timeout: float = 10) -> dict:
    while True:
        event = await agent.receive_json_from(timeout=timeout)
        if event["type"] == kind:
            return event


async def visitor_message(agent: WebsocketCommunicator) -> dict:
    """The next visitor's message the inbox hears (agents also hear every agent's reply)."""
    while True:
        event = await next_of(agent, "message")
        if event["message"]["role"] == "user":
            return event


async def act(agent: WebsocketCommunicator, **payload) -> None:  # type: ignore[no-untyped-def]
    await agent.send_to(text_data=json.dumps(payload))


def test_a_visitor_and_an_agent_talk_while_the_bot_stays_silent(ws, site: Site, agent_cookie):
    async def scenario():  # type: ignore[no-untyped-def]
        agent = await open_agent(agent_cookie)
        queue = await next_of(agent, "queue")
        visitor = await open_visitor(site.bot)
        await visitor.ask("Can I talk to a human, please?")
        asked = await visitor.until_done()
        conversation_id = asked[0]["id"]
        waiting = await next_of(agent, "update")
        first = await visitor_message(agent)

        await act(agent, type="take", conversation_id=conversation_id)
        taken = await visitor.receive()
        await act(agent, type="reply", conversation_id=conversation_id, text="Hi, Dana here.")
        reply = await visitor.receive()

        await visitor.ask("My order 123 has not arrived.", conversation_id=conversation_id)
        silent = await visitor.until_done()
        relayed = await visitor_message(agent)

        await act(agent, type="open", conversation_id=conversation_id)
        transcript = await next_of(agent, "transcript")
        await act(agent, type="release", conversation_id=conversation_id)
        released = await visitor.receive()
        await visitor.ask("How do I request a refund?", conversation_id=conversation_id)
        answered = await visitor.until_done()
        await visitor.close()
        await agent.disconnect()
        return (
            queue,
            asked,
            waiting,
            first,
            taken,
            reply,
            silent,
            relayed,
            transcript,
            released,
            answered,
        )

    (
        queue,
        asked,
        waiting,
        first,
        taken,
        reply,
        silent,
        relayed,
        transcript,
        released,
        answered,
    ) = ws(scenario)
    assert queue["conversations"] == [] or all(
        c["status"] in {"waiting", "agent"} for c in queue["conversations"]
    )
    kinds = [e["type"] for e in asked]
    assert kinds == ["conversation", "status", "done"]  # no tokens: the bot did not answer
    assert asked[1]["status"] == "waiting" and asked[1]["available"] is True  # Dana is online
    conversation_id = asked[0]["id"]
    assert waiting["conversation"]["id"] == conversation_id
    assert waiting["conversation"]["status"] == "waiting"
    assert first["message"]["content"] == "Can I talk to a human, please?"
    assert taken == {"type": "status", "status": "agent", "agent": "Dana"}
    assert reply["type"] == "agent_message"
    assert reply["message"]["content"] == "Hi, Dana here." and reply["message"]["author"] == "Dana"
    assert [e["type"] for e in silent] == ["conversation", "status", "done"]
    assert silent[1]["status"] == "agent"
    assert relayed["message"]["content"] == "My order 123 has not arrived."
    assert [m["role"] for m in transcript["messages"]] == ["user", "agent", "user"]
    assert released == {"type": "status", "status": "bot"}
    assert "token" in [e["type"] for e in answered] and answered[-1]["answered"] is True
    with schema_context("tenant_a"):
        conversation = Conversation.objects.get(pk=conversation_id)
        roles = list(conversation.messages.order_by("created_at").values_list("role", flat=True))
        assert conversation.status == "bot" and conversation.agent is None
        agent_message = Message.objects.get(conversation=conversation, role="agent")
        assert agent_message.author.username == AGENT
    assert roles == ["user", "agent", "user", "user", "assistant"]


def test_tenant_b_agents_neither_see_nor_join_tenant_a_conversations(
    ws, site: Site, committed_session
):
    charlie = committed_session("tenant_b", "charlie")

    async def scenario():  # type: ignore[no-untyped-def]
        agent_b = await open_agent(charlie, host=HOST_B)
        queue = await next_of(agent_b, "queue")
        visitor = await open_visitor(site.bot)
        await visitor.ask("I want to speak to a person")
        conversation_id = (await visitor.until_done())[0]["id"]
        heard_nothing = await agent_b.receive_nothing(timeout=0.5)
        for action in ("take", "open", "close"):
            await act(agent_b, type=action, conversation_id=conversation_id)
        refusals = [await next_of(agent_b, "error") for _ in range(3)]
        await act(agent_b, type="reply", conversation_id=conversation_id, text="I'm in!")
        refusals.append(await next_of(agent_b, "error"))
        # Charlie's session on tenant A's host: not a user there.
        on_a = WebsocketCommunicator(
            application,
            "/ws/staff/inbox/",
            headers=[
                (b"host", HOST_A.encode()),
                (b"origin", b"http://a.localhost"),
                (b"cookie", charlie.encode()),
            ],
        )
        await on_a.connect(timeout=10)
        closed = await on_a.receive_output(timeout=5)
        await visitor.close()
        await agent_b.disconnect()
        return queue, heard_nothing, refusals, closed, conversation_id

    queue, heard_nothing, refusals, closed, conversation_id = ws(scenario)
    assert all(c["id"] != conversation_id for c in queue["conversations"])
    assert heard_nothing
    assert all(r["message"] == "No such conversation." for r in refusals)
    assert closed["type"] == "websocket.close" and closed["code"] == 4403
    with schema_context("tenant_a"):
        conversation = Conversation.objects.get(pk=conversation_id)
        assert conversation.status == "waiting" and conversation.agent is None
        assert not conversation.messages.filter(role="agent").exists()
