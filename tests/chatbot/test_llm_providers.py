"""LLM providers: the real openai and anthropic SDKs against a local server speaking their
wire protocols (tests/fakes/llm_server.py); retries, timeouts, cut streams, usage, secrets."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Iterator

import pytest

from chatbot.llm import (
    ChatMessage,
    LLMRequest,
    ProviderError,
    Token,
    Usage,
    backoff_delay,
    get_provider,
    stream_with_retries,
)
from chatbot.llm.base import VISITOR_MESSAGES
from tests.fakes.llm_server import FakeLLMServer, cut, hang, reply, status

VENDORS = ["openai", "anthropic", "openai_compatible"]
KEY = "sk-test-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
SYSTEM = "You are Parley's test assistant."


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def request(question: str = "How long does shipping take?") -> LLMRequest:
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello! How can I help?")]
    return LLMRequest(
        system=SYSTEM,
        messages=[*history, ChatMessage("user", question)],
        model="test-model",
        max_tokens=50,
        question=question,
    )


def provider_for(server: FakeLLMServer, vendor: str, timeout: float = 5.0, key: str = KEY):
    return get_provider(vendor, api_key=key, base_url=server.url_for(vendor), timeout=timeout)


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def run(
    provider, request_, **retry_options
) -> tuple[list[str], Usage | None, ProviderError | None]:
    """Stream with retries (no real sleeping); return the tokens, the usage, the error."""
    retry_options.setdefault("sleep", _no_sleep)

    async def drain():
        tokens: list[str] = []
        usage = None
        try:
            async for item in stream_with_retries(provider, request_, **retry_options):
                if isinstance(item, Token):
                    tokens.append(item.text)
                else:
                    assert usage is None, "more than one Usage"
                    usage = item
        except ProviderError as exc:
            return tokens, usage, exc
        return tokens, usage, None

    return asyncio.run(drain())


@pytest.mark.parametrize("vendor", VENDORS)
def test_it_streams_tokens_in_order_with_the_providers_usage(server, vendor):
    server.enqueue(reply(["Orders", " ship", " in", " 2", " days."], usage=(42, 5)))

    tokens, usage, error = run(provider_for(server, vendor), request())

    assert error is None
    assert tokens == ["Orders", " ship", " in", " 2", " days."]
    assert usage == Usage(42, 5, estimated=False)
    [sent] = server.chat_requests
    assert sent.body["model"] == "test-model"
    assert sent.body["stream"] is True
    assert sent.system == SYSTEM
    assert sent.last_user_text == "How long does shipping take?"
    assert sent.api_key == KEY


def test_openai_gets_the_system_prompt_first_and_asks_for_usage(server):
    run(provider_for(server, "openai"), request())

    body = server.chat_requests[0].body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in body["messages"][1:]] == ["user", "assistant", "user"]
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50
    assert body["temperature"] == 0.2


def test_openai_reasoning_models_get_no_temperature(server):
    reasoning = request()
    reasoning.model = "o4-mini"

    run(provider_for(server, "openai"), reasoning)

    assert "temperature" not in server.chat_requests[0].body


def test_anthropic_gets_the_system_prompt_as_a_parameter(server):
    greeting_first = request()
    greeting_first.messages.insert(0, ChatMessage("assistant", "Welcome!"))

    run(provider_for(server, "anthropic"), greeting_first)

    body = server.chat_requests[0].body
    assert body["system"] == SYSTEM
    # The Messages API wants a user turn first: the bot's opening greeting is dropped.
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["max_tokens"] == 50
    assert server.chat_requests[0].headers["anthropic-version"]


def test_a_compatible_server_gets_max_tokens_and_a_v1_base_url(server):
    provider = get_provider("openai_compatible", base_url=server.base_url)  # no /v1, no key

    tokens, _, error = run(provider, request())

    assert error is None and tokens
    [sent] = server.chat_requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body["max_tokens"] == 50
    assert sent.api_key  # a placeholder: the SDK insists on one, local servers ignore it


def test_a_compatible_server_that_sends_no_usage_gets_an_estimate(server):
    server.enqueue(reply(["Two", " words"], omit_usage=True))

    tokens, usage, error = run(provider_for(server, "openai_compatible"), request())

    assert error is None and tokens == ["Two", " words"]
    assert usage is not None and usage.estimated
    assert usage.input_tokens > 0 and usage.output_tokens > 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_it_retries_a_429_before_the_first_token(server, vendor):
    server.enqueue(status(429, retry_after=0), reply(["Yes", "."], usage=(10, 2)))

    tokens, usage, error = run(provider_for(server, vendor), request())

    assert error is None
    assert tokens == ["Yes", "."]  # one answer, not two
    assert usage == Usage(10, 2)
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("vendor", VENDORS)
def test_it_gives_up_on_a_500_after_the_last_attempt(server, vendor):
    server.enqueue(status(500), status(500), status(500), reply())

    tokens, usage, error = run(provider_for(server, vendor), request(), attempts=3)

    assert tokens == [] and usage is None
    assert error is not None and error.code == "provider_error"
    assert error.status == 500 and error.retryable
    assert len(server.chat_requests) == 3


@pytest.mark.parametrize("abrupt", [True, False], ids=["socket-closed", "body-ended"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_cut_after_a_token_is_interrupted_and_not_retried(server, vendor, abrupt):
    server.enqueue(cut(after_tokens=2, abrupt=abrupt), reply())

    tokens, usage, error = run(provider_for(server, vendor), request())

    assert tokens == ["This", " is"]
    assert usage is None
    assert error is not None and error.code == "interrupted" and not error.retryable
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_stream_cut_before_the_first_token_is_retried(server, vendor):
    server.enqueue(cut(after_tokens=0), reply(["Fine."], usage=(3, 1)))

    tokens, usage, error = run(provider_for(server, vendor), request())

    assert error is None and tokens == ["Fine."] and usage == Usage(3, 1)
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("send_headers", [False, True], ids=["silent", "headers-only"])
@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_silent_server_times_out(server, vendor, send_headers):
    server.enqueue(hang(5, send_headers=send_headers))
    started = time.monotonic()

    tokens, _, error = run(provider_for(server, vendor, timeout=0.5), request(), attempts=1)

    assert time.monotonic() - started < 2.5
    assert tokens == []
    assert error is not None and error.code == "timeout" and error.retryable


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_the_deadline_bounds_a_stream_that_trickles(server, vendor):
    # Each gap stays under the read timeout; only the deadline of the attempt ends it.
    server.enqueue(reply(["word "] * 30, delay=0.1))
    started = time.monotonic()

    tokens, _, error = run(provider_for(server, vendor, timeout=0.6), request())

    assert time.monotonic() - started < 2.5
    assert 0 < len(tokens) < 30
    assert error is not None and error.code == "interrupted"
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_refused_key_is_not_retried(vendor):
    with FakeLLMServer(api_key="sk-the-right-key-000000000000") as server:
        tokens, _, error = run(provider_for(server, vendor), request())

    assert tokens == []
    assert error is not None and error.code == "auth" and not error.retryable
    assert error.status == 401
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_missing_key_fails_before_any_request(server, vendor):
    _, _, error = run(provider_for(server, vendor, key=""), request())

    assert error is not None and error.code == "auth"
    assert server.chat_requests == []


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.name} {record.getMessage()} {record.args!r}")
        if record.exc_info:
            self.texts.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture
def debug_records() -> Iterator[_Records]:
    """Every log record of every logger, at DEBUG (the SDKs and their transports included)."""
    handler = _Records()
    names = ["", "openai", "anthropic", "httpx", "httpx2", "httpcore", "httpcore2", "chatbot"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_api_key_appears_in_no_log_record_or_error(vendor, debug_records):
    errors: list[ProviderError] = []
    with FakeLLMServer() as server:
        server.enqueue(reply(), status(429, retry_after=0), status(500), cut(1))
        server.enqueue(status(400, message=f"bad request for key {KEY}"), hang(3), hang(3))
        for _ in range(5):
            errors.append(run(provider_for(server, vendor, timeout=0.5), request(), attempts=2)[2])
    with FakeLLMServer(api_key="sk-the-right-key-000000000000") as server:
        # This server quotes the presented key back in its 401 message.
        errors.append(run(provider_for(server, vendor), request())[2])

    codes = [error.code for error in errors if error is not None]
    assert codes == ["provider_error", "interrupted", "bad_request", "timeout", "auth"]
    assert len(debug_records.texts) > 20  # the SDKs did log, at DEBUG
    for text in debug_records.texts:
        assert KEY not in text
    for error in errors[1:]:
        shown = "".join(traceback.format_exception(error)) + repr(error) + error.visitor_message
        assert KEY not in shown


def test_backoff_uses_full_jitter_below_an_exponential_ceiling():
    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(n, base_delay=0.5, max_delay=8.0, rng=rng) for n in range(1, 7)]

    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(0 <= d <= c for d, c in zip(delays(1234), ceilings, strict=True))
    assert len(set(delays(1234))) == 6  # jittered, not fixed steps
    assert delays(1234) == delays(1234)
    assert delays(1234) != delays(4321)


def test_backoff_ceilings_double_and_stop_at_max_delay():
    class Highest:
        def uniform(self, low: float, high: float) -> float:
            return high

    delays = [
        backoff_delay(n, base_delay=0.5, max_delay=8.0, rng=Highest())  # type: ignore[arg-type]
        for n in range(1, 8)
    ]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_retry_after_is_honoured_up_to_max_delay():
    assert backoff_delay(1, base_delay=0.5, max_delay=8.0, retry_after=3.0) == 3.0
    assert backoff_delay(1, base_delay=0.5, max_delay=8.0, retry_after=120.0) == 8.0


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_stream_with_retries_waits_as_the_server_asks(server, vendor):
    server.enqueue(status(429, retry_after=2), status(503, retry_after=60), reply())
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    _, _, error = run(provider_for(server, vendor), request(), max_delay=8.0, sleep=sleep)

    assert error is None
    assert slept == [2.0, 8.0]


def test_every_error_code_has_a_plain_visitor_message():
    for code, message in VISITOR_MESSAGES.items():
        error = ProviderError(code, "openai: HTTP 500 api_error")
        assert error.visitor_message == message
        assert "HTTP" not in message and "openai" not in message.lower()
    assert ProviderError("timeout", "x").retryable
    assert not ProviderError("auth", "x").retryable


def test_complete_returns_the_whole_answer(server):
    server.enqueue(reply(["shipping ", "policy"], usage=(9, 2)))

    text, usage = asyncio.run(provider_for(server, "anthropic").complete(request()))

    assert (text, usage) == ("shipping policy", Usage(9, 2))


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown LLM provider"):
        get_provider("gpt-9")
