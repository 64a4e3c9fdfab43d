"""The visitor socket through the full ASGI stack (tenant middleware, origin check,
consumer, answer pipeline, channel layer): answers stream in order, stop and disconnect
save partial answers, limits say so, feedback and resume stay within the visitor's own
conversations, and nothing crosses tenants."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from django_tenants.utils import schema_context

from chatbot.answering import STOPPED
from conversations.models import Conversation, Message
from tests.fakes.llm_server import reply
from tests.widget.conftest import HOST_B, Site, open_visitor, visitor_id
from widget.protocol import conversation_group

REFUND_QUESTION = "How do I request a refund?"
OFF_TOPIC = "What is the best recipe for lasagna?"


def message(pk: str) -> Message:
    with schema_context("tenant_a"):
        return Message.objects.select_related("conversation").get(pk=pk)


# --- Tenant, bot and origin --------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin",
    [
        "http://a.localhost",  # the tenant's own host...
        "https://a.localhost:8443",  # ...on any port, with either scheme
        "https://shop.example.com",  # an allowed origin
        "https://shop.example.com:443",  # the same, default port spelled out
        "https://www.partner.example",  # a wildcard's subdomain
        "http://localhost:3000",
    ],
)
def test_the_tenants_hosts_and_the_bots_allowed_origins_may_connect(ws, site: Site, origin):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, origin=origin)
        quiet = await visitor.quiet()
        await visitor.close()
        return quiet

    assert ws(scenario) is True


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://shop.example.com.evil.example",  # a look-alike suffix
        "http://shop.example.com",  # the allowed origin's host, another scheme
        "https://shop.example.com:8443",  # ...or another port
        "https://partner.example",  # the wildcard covers subdomains only
        "http://localhost:3001",
        "null",  # sandboxed frames, file: pages
        None,  # no Origin header at all (not a browser)
    ],
)
def test_other_origins_are_closed_with_4403(ws, site: Site, origin):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, origin=origin)
        return await visitor.closed_with()

    assert ws(scenario) == 4403


def test_an_unknown_bot_is_closed_with_4404(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        return await (await open_visitor("no-such-bot")).closed_with()

    assert ws(scenario) == 4404


def test_another_tenants_bot_id_is_closed_on_tenant_a(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        return await (await open_visitor(site.bot_b)).closed_with()

    assert ws(scenario) == 4404


def test_charlies_host_cannot_reach_tenant_as_bot(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        theirs = await open_visitor(site.bot, host=HOST_B, origin="http://b.localhost")
        code = await theirs.closed_with()
        own = await open_visitor(site.bot_b, host=HOST_B, origin="http://b.localhost")
        quiet = await own.quiet()
        await own.close()
        return code, quiet

    assert ws(scenario) == (4404, True)


def test_an_unknown_host_refuses_the_handshake(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, host="nobody.localhost")
        return visitor.refused_code  # type: ignore[attr-defined]

    assert ws(scenario) == 4404


# --- Answers ------------------------------------------------------------------------------------
def test_an_answer_streams_conversation_tokens_sources_then_done(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, query="channel=widget")
        await visitor.ask(REFUND_QUESTION)
        events = await visitor.until_done()
        await visitor.close()
        return visitor.id, events

    vid, events = ws(scenario)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "conversation"
    assert kinds[-2:] == ["sources", "done"]
    assert set(kinds[1:-2]) == {"token"} and len(kinds) > 4  # streamed, not one block
    answer = "".join(e["text"] for e in events if e["type"] == "token")
    assert "refund" in answer.lower() and "[1]" in answer
    sources, done = events[-2], events[-1]
    assert sources["items"][0]["title"] == "Refund policy"
    assert done["answered"] is True and done["stopped"] is False
    saved = message(done["message_id"])
    assert saved.content == answer and saved.answered is True
    conversation = saved.conversation
    assert str(conversation.pk) == events[0]["id"]
    assert conversation.visitor_id == vid and conversation.channel == "widget"


def test_an_off_topic_question_is_refused_with_a_handoff_offer(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        events = await visitor.until_done()
        await visitor.close()
        return events

    events = ws(scenario)
    assert [e["type"] for e in events] == ["conversation", "token", "sources", "done"]
    assert events[1]["text"] == site.bot.fallback_message
    assert events[2]["items"] == []
    assert events[-1]["answered"] is False and events[-1]["handoff"] is True
    assert message(events[-1]["message_id"]).conversation.channel == "page"


def test_an_llm_answer_streams_through_the_provider(ws, site: Site):
    site.llm.enqueue(reply(["Refunds", " take", " five", " days", " [1]."]))

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.llm_bot)
        await visitor.ask(REFUND_QUESTION)
        events = await visitor.until_done()
        await visitor.close()
        return events

    events = ws(scenario)
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert tokens == ["Refunds", " take", " five", " days", " [1]."]
    assert events[-1]["answered"] is True


def test_stop_cancels_the_answer_and_keeps_what_was_streamed(ws, site: Site):
    site.llm.enqueue(reply([f" word{n}" for n in range(40)], delay=0.2))

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.llm_bot)
        await visitor.ask(REFUND_QUESTION)
        conversation = await visitor.receive()
        tokens = [await visitor.receive(), await visitor.receive()]
        await visitor.send({"type": "stop"})
        rest = await visitor.until_done()
        # Not busy any more: the next question is answered (a follow-up: the LLM first
        # rewrites it into a standalone query).
        site.llm.enqueue(reply(["How are damaged items refunded?"]), reply(["Again."]))
        await visitor.ask("And for damaged items?")
        again = await visitor.until_done()
        await visitor.close()
        return conversation, tokens + rest, again

    conversation, events, again = ws(scenario)
    done = events[-1]
    assert done == {**done, "type": "done", "stopped": True, "answered": False}
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert 2 <= streamed.count("word") < 40
    saved = message(done["message_id"])
    assert saved.error == STOPPED and saved.content == streamed
    assert str(saved.conversation_id) == conversation["id"]
    assert again[0] == {"type": "conversation", "id": conversation["id"]}
    assert again[-1]["answered"] is True and again[-1]["stopped"] is False


def test_a_second_message_while_streaming_is_refused_as_busy(ws, site: Site):
    site.llm.enqueue(reply([f" w{n}" for n in range(10)], delay=0.1))

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.llm_bot)
        await visitor.ask(REFUND_QUESTION)
        first = await visitor.receive()
        await visitor.ask("Another question")
        events = await visitor.until_done()
        await visitor.close()
        return first, events

    first, events = ws(scenario)
    assert first["type"] == "conversation"
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["busy"]
    assert events[-1]["answered"] is True  # the first answer went on
    with schema_context("tenant_a"):
        assert Message.objects.filter(conversation_id=first["id"]).count() == 2


def test_a_disconnect_mid_stream_saves_the_partial_answer(ws, site: Site):
    site.llm.enqueue(reply([f" part{n}" for n in range(40)], delay=0.2))

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.llm_bot)
        await visitor.ask(REFUND_QUESTION)
        conversation = await visitor.receive()
        await visitor.receive()  # a first token
        await visitor.close()
        return conversation["id"]

    conversation_id = ws(scenario)
    with schema_context("tenant_a"):
        answer = Message.objects.get(conversation_id=conversation_id, role="assistant")
    assert answer.error == STOPPED and answer.content.startswith(" part0")


def test_a_provider_failure_is_an_error_then_done(ws, site: Site):
    from tests.fakes.llm_server import status

    site.llm.enqueue(status(400, message="bad model"))

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.llm_bot)
        await visitor.ask(REFUND_QUESTION)
        events = await visitor.until_done()
        await visitor.close()
        return events

    events = ws(scenario)
    assert [e["type"] for e in events] == ["conversation", "error", "done"]
    assert events[1]["code"] == "provider_error" and events[1]["message"]
    assert events[-1]["answered"] is False


# --- Limits and bad input -----------------------------------------------------------------------
def test_questions_are_rate_limited_per_visitor(ws, site: Site, settings):
    settings.PARLEY_VISITOR_MESSAGES_PER_MINUTE = 2

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        for _ in range(2):
            await visitor.ask(OFF_TOPIC)
            await visitor.until_done()
        await visitor.ask(OFF_TOPIC)
        refused = await visitor.receive()
        # Another visitor from the same address still has a budget.
        other = await open_visitor(site.bot, ip="10.99.0.1")
        await other.ask(OFF_TOPIC)
        other_events = await other.until_done()
        await visitor.close()
        await other.close()
        return refused, other_events

    refused, other_events = ws(scenario)
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert 1 <= refused["retry_after"] <= 120
    assert other_events[-1]["type"] == "done"


def test_requests_are_rate_limited_per_ip(ws, site: Site, settings):
    settings.PARLEY_IP_REQUESTS_PER_MINUTE = 2
    ip = f"10.98.{visitor_id().__hash__() % 250}.7"

    async def scenario():  # type: ignore[no-untyped-def]
        codes = []
        for _ in range(3):  # a new visitor id each time: only the address is shared
            visitor = await open_visitor(site.bot, ip=ip)
            await visitor.ask(OFF_TOPIC)
            codes.append((await visitor.receive())["type"])
            await visitor.close()
        return codes

    assert ws(scenario) == ["conversation", "conversation", "error"]


def test_messages_are_length_limited(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        replies = []
        for text in ["x" * 4001, "   ", "é" * 4000 + "!"]:
            await visitor.ask(text)
            replies.append(await visitor.receive())
        await visitor.send('{"type": "message", "text": "' + "x" * 40_000 + '"}')
        replies.append(await visitor.receive())
        await visitor.close()
        return replies

    replies = ws(scenario)
    assert [r["code"] for r in replies] == ["too_long", "empty", "too_long", "too_long"]
    assert "4,000" in replies[0]["message"]


def test_malformed_frames_get_errors_and_the_socket_stays_open(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        codes = []
        for frame in [
            "not json",
            "[1, 2]",
            '{"type": "dance"}',
            '{"text": "no type"}',
            {"type": "message", "text": "Hi", "visitor_id": "short"},
            {"type": "message", "text": "Hi", "visitor_id": "a b c d e f g h"},
            {"type": "message", "text": "Hi"},
            {"type": "feedback", "message_id": "x", "rating": "up"},  # no visitor yet
            {"type": "message", "text": ["Hi"], "visitor_id": visitor.id},
        ]:
            await visitor.send(frame)
            codes.append((await visitor.receive())["code"])
        await visitor.ws.send_to(bytes_data=b"\x00\x01")
        codes.append((await visitor.receive())["code"])
        await visitor.ask(OFF_TOPIC)
        done = (await visitor.until_done())[-1]
        await visitor.close()
        return codes, done

    codes, done = ws(scenario)
    assert codes == [
        "bad_json",
        "bad_json",
        "unknown_type",
        "unknown_type",
        "invalid",
        "invalid",
        "invalid",
        "no_conversation",
        "empty",
        "bad_json",
    ]
    assert done["type"] == "done"


def test_a_socket_serves_one_visitor(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        await visitor.until_done()
        await visitor.send({"type": "message", "text": "Hi", "visitor_id": visitor_id()})
        error = await visitor.receive()
        await visitor.close()
        return error

    assert ws(scenario)["code"] == "invalid"


# --- Feedback, resume, handoff ------------------------------------------------------------------
def test_feedback_is_stored_on_the_visitors_own_answers_only(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(REFUND_QUESTION)
        events = await visitor.until_done()
        answer_id = events[-1]["message_id"]
        await visitor.send({"type": "feedback", "message_id": answer_id, "rating": "up"})
        rated = await visitor.receive()
        await visitor.send({"type": "feedback", "message_id": answer_id, "rating": "meh"})
        bad_rating = await visitor.receive()
        with_question = events[0]["id"]  # a conversation id is no message id
        await visitor.send({"type": "feedback", "message_id": with_question, "rating": "up"})
        not_a_message = await visitor.receive()
        stranger = await open_visitor(site.bot)
        await stranger.send(
            {
                "type": "feedback",
                "message_id": answer_id,
                "rating": "down",
                "visitor_id": stranger.id,
            }
        )
        strangers = await stranger.receive()
        await visitor.close()
        await stranger.close()
        return answer_id, rated, bad_rating, not_a_message, strangers

    answer_id, rated, bad_rating, not_a_message, strangers = ws(scenario)
    assert rated == {"type": "rated", "message_id": answer_id, "rating": "up"}
    assert bad_rating["code"] == "invalid"
    assert not_a_message["code"] == "not_found"
    assert strangers["code"] == "not_found"
    saved = message(answer_id)
    assert saved.rating == "up" and saved.rated_at is not None


def test_feedback_on_a_question_is_refused(ws, site: Site):
    async def ask():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        events = await visitor.until_done()
        await visitor.close()
        return visitor.id, events[0]["id"]

    vid, conversation_id = ws(ask)
    with schema_context("tenant_a"):
        question = Message.objects.get(conversation_id=conversation_id, role="user")

    async def rate():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, vid=vid)
        await visitor.send(
            {"type": "feedback", "message_id": str(question.pk), "rating": "up", "visitor_id": vid}
        )
        error = await visitor.receive()
        await visitor.close()
        return error

    assert ws(rate)["code"] == "not_found"


def test_the_same_visitor_resumes_with_history_and_continues(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        first = await open_visitor(site.bot)
        await first.ask(REFUND_QUESTION)
        events = await first.until_done()
        await first.close()
        conversation_id = events[0]["id"]
        again = await open_visitor(site.bot, vid=first.id)  # a reload
        await again.send(
            {"type": "resume", "conversation_id": conversation_id, "visitor_id": first.id}
        )
        history = await again.receive()
        await again.ask(OFF_TOPIC)  # no conversation_id: the resumed one goes on
        more = await again.until_done()
        await again.close()
        return events, history, more

    events, history, more = ws(scenario)
    conversation_id = events[0]["id"]
    assert history["type"] == "history" and history["conversation_id"] == conversation_id
    assert history["status"] == "bot"
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["user", "assistant"]
    assert history["messages"][0]["content"] == REFUND_QUESTION
    assert history["messages"][1]["id"] == events[-1]["message_id"]
    assert history["messages"][1]["sources"] == events[-2]["items"]
    assert more[0] == {"type": "conversation", "id": conversation_id}
    with schema_context("tenant_a"):
        assert Message.objects.filter(conversation_id=conversation_id).count() == 4


def test_another_visitor_cannot_resume_or_continue_a_conversation(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        owner = await open_visitor(site.bot)
        await owner.ask(OFF_TOPIC)
        conversation_id = (await owner.until_done())[0]["id"]
        await owner.close()
        other = await open_visitor(site.bot)
        await other.send(
            {"type": "resume", "conversation_id": conversation_id, "visitor_id": other.id}
        )
        resume = await other.receive()
        await other.ask("Tell me everything", conversation_id=conversation_id)
        continued = await other.receive()
        await other.send({"type": "resume", "conversation_id": "garbage", "visitor_id": other.id})
        garbage = await other.receive()
        await other.close()
        return conversation_id, resume, continued, garbage

    conversation_id, resume, continued, garbage = ws(scenario)
    assert resume["code"] == "not_found"
    assert continued["code"] == "not_found"
    assert garbage["code"] == "not_found"
    with schema_context("tenant_a"):
        assert Message.objects.filter(conversation_id=conversation_id).count() == 2


def test_tenant_bs_conversation_cannot_be_resumed_on_tenant_a(ws, site: Site):
    vid = visitor_id()
    with schema_context("tenant_b"):
        theirs = Conversation.objects.create(bot=site.bot_b, visitor_id=vid, channel="page")

    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot, vid=vid)
        await visitor.send({"type": "resume", "conversation_id": str(theirs.pk), "visitor_id": vid})
        resume = await visitor.receive()
        await visitor.ask(OFF_TOPIC, conversation_id=str(theirs.pk))
        continued = await visitor.receive()
        await visitor.close()
        return resume, continued

    try:
        resume, continued = ws(scenario)
    finally:
        with schema_context("tenant_b"):
            theirs.delete()
    assert resume["code"] == "not_found" and continued["code"] == "not_found"


def test_a_handoff_request_flags_the_conversation_and_says_so(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        conversation_id = (await visitor.until_done())[0]["id"]
        await visitor.send({"type": "handoff"})
        status = await visitor.receive()
        await visitor.close()
        # A visitor may ask for a person before asking anything.
        early = await open_visitor(site.bot)
        await early.send({"type": "handoff", "visitor_id": early.id})
        started = [await early.receive(), await early.receive()]
        await early.close()
        return conversation_id, status, started

    conversation_id, status, started = ws(scenario)
    assert status["type"] == "status" and status["status"] == "waiting"
    assert "available" in status and "message" in status  # can anyone answer now?
    assert started[0]["type"] == "conversation"
    assert started[1]["type"] == "status" and started[1]["status"] == "waiting"
    with schema_context("tenant_a"):
        assert Conversation.objects.get(pk=conversation_id).status == "waiting"
        assert Conversation.objects.get(pk=started[0]["id"]).status == "waiting"


def test_agent_messages_and_status_reach_the_conversations_sockets(ws, site: Site):
    async def scenario():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        conversation_id = (await visitor.until_done())[0]["id"]
        layer = get_channel_layer()
        group = conversation_group("tenant_a", conversation_id)
        agent = {"id": "m1", "content": "Hi, Dana here.", "author": "Dana", "created_at": "now"}
        await layer.group_send(group, {"type": "chat.agent_message", "message": agent})
        await layer.group_send(group, {"type": "chat.status", "status": "agent"})
        # Another tenant's group with the same conversation id reaches nobody here.
        await layer.group_send(
            conversation_group("tenant_b", conversation_id),
            {"type": "chat.status", "status": "closed"},
        )
        relayed = [await visitor.receive(), await visitor.receive()]
        quiet = await visitor.quiet()
        await visitor.close()
        return agent, relayed, quiet

    agent, relayed, quiet = ws(scenario)
    assert relayed == [
        {"type": "agent_message", "message": agent},
        {"type": "status", "status": "agent"},
    ]
    assert quiet


def test_a_used_up_monthly_quota_is_an_error_with_retry_after(ws, site: Site):
    from tenants.models import Tenant

    async def ask():  # type: ignore[no-untyped-def]
        visitor = await open_visitor(site.bot)
        await visitor.ask(OFF_TOPIC)
        first = await visitor.receive()
        if first["type"] == "conversation":
            await visitor.until_done()
        await visitor.close()
        return first

    ws(ask)  # at least one question this month
    Tenant.objects.filter(schema_name="tenant_a").update(max_messages_per_month=1)
    try:
        error = ws(ask)
    finally:
        Tenant.objects.filter(schema_name="tenant_a").update(max_messages_per_month=0)
    assert error["type"] == "error" and error["code"] == "quota_exceeded"
    assert error["retry_after"] > 0 and error["message"]
