"""A fake LLM vendor: a real HTTP server on 127.0.0.1 speaking OpenAI's Chat Completions
and Anthropic's Messages wire protocols, streaming included, scripted request by request.

The real SDKs talk to it unchanged (point their `base_url` at it), so tests exercise the
exact bytes a vendor sends: OpenAI's `data: {chunk}` lines ending with `data: [DONE]`,
Anthropic's named events from `message_start` to `message_stop`, chunked HTTP/1.1.

    with FakeLLMServer() as server:
        server.enqueue(status(429, retry_after=0), reply(["Hel", "lo"], usage=(12, 2)))
        provider = get_provider("openai", api_key="sk-test", base_url=server.openai_url)
        ...
        assert len(server.chat_requests) == 2
        assert server.chat_requests[-1].system.startswith("You are")

Scenarios are served first in, first out; with none queued, `server.default` answers
(a short reply, or the last user message when `echo=True`):

    reply(tokens, usage=(in, out), delay=0)   an answer, one event per token (omit_usage:
                                              no usage chunk, as some compatible servers)
    status(code, retry_after=None)            an HTTP error with the vendor's error body
    cut(after_tokens=n, abrupt=True)          n tokens, then the socket is closed mid-body;
                                              abrupt=False ends the body cleanly, but still
                                              without the terminal events
    hang(seconds, send_headers=False)         nothing (or the headers only) for `seconds`

`instant=True` writes each response in one piece, for benchmarks with many concurrent
requests. Every request is recorded (`server.requests`). `api_key="…"` makes the server
refuse other keys with a 401 whose message quotes the presented key back (worse than the
vendors do, so that tests prove it is redacted). In pytest, use the `llm_server` fixture.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_TOKENS = ("This", " is", " the", " fake", " model", "'s", " answer", ".")
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass(frozen=True)
class Scenario:
    """What the server does with one request; made by `reply`, `status`, `cut`, `hang`."""

    kind: str  # "reply" | "status" | "cut" | "hang"
    tokens: tuple[str, ...] | None = None  # None: the default tokens (or the echo)
    usage: tuple[int, int] | None = None  # None: counted from the prompt and the tokens
    delay: float = 0.0  # seconds between two token events
    omit_usage: bool = False  # OpenAI protocol: no usage chunk despite include_usage
    status: int = 200
    retry_after: float | None = None
    message: str = ""
    after_tokens: int = 0
    abrupt: bool = True
    seconds: float = 0.0
    send_headers: bool = False


def reply(
    tokens: list[str] | tuple[str, ...] | None = None,
    usage: tuple[int, int] | None = None,
    *,
    delay: float = 0.0,
    omit_usage: bool = False,
) -> Scenario:
    """An answer. `omit_usage` plays a compatible server that ignores stream_options."""
    as_tuple = tuple(tokens) if tokens is not None else None
    return Scenario("reply", as_tuple, usage, delay, omit_usage=omit_usage)


def status(code: int, *, retry_after: float | None = None, message: str = "") -> Scenario:
    return Scenario("status", status=code, retry_after=retry_after, message=message)


def cut(after_tokens: int = 1, *, tokens: list[str] | None = None, abrupt: bool = True) -> Scenario:
    return Scenario(
        "cut", tuple(tokens) if tokens else None, after_tokens=after_tokens, abrupt=abrupt
    )


def hang(seconds: float = 5.0, *, send_headers: bool = False) -> Scenario:
    return Scenario("hang", seconds=seconds, send_headers=send_headers)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # names in lower case
    body: Any  # the parsed JSON body, or None
    vendor: str | None  # "openai" | "anthropic" for chat requests
    at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent, system prompt excluded (for both vendors)."""
        messages = (self.body or {}).get("messages", [])
        return [m for m in messages if m.get("role") not in {"system", "developer"}]

    @property
    def system(self) -> str:
        body = self.body or {}
        if self.vendor == "anthropic":
            return _text(body.get("system", ""))
        roles = {"system", "developer"}
        return "\n".join(
            _text(m["content"]) for m in body.get("messages", []) if m["role"] in roles
        )

    @property
    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return _text(users[-1]["content"]) if users else ""

    @property
    def api_key(self) -> str:
        """The key presented: `x-api-key` (Anthropic's historical header) or a bearer token
        (OpenAI, and the anthropic SDK since 2.x)."""
        bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
        return self.headers.get("x-api-key") or bearer


def _text(content: Any) -> str:
    """A message content as text: a string, or a list of content blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


class FakeLLMServer:
    """The server; a context manager (`with FakeLLMServer() as server:`)."""

    def __init__(self, *, echo: bool = False, instant: bool = False, api_key: str | None = None):
        self.echo = echo
        self.instant = instant
        self.api_key = api_key
        self.default = reply()
        self.requests: list[RecordedRequest] = []
        self._scenarios: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.openai_url = f"{self.base_url}/v1"  # base_url for the openai SDK
        self.anthropic_url = self.base_url  # the anthropic SDK adds /v1/messages itself
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeLLMServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()

    def url_for(self, provider: str) -> str:
        """The `base_url` to give `get_provider` for a `Bot.provider` value."""
        return self.anthropic_url if provider == "anthropic" else self.openai_url

    def enqueue(self, *scenarios: Scenario) -> None:
        with self._lock:
            self._scenarios.extend(scenarios)

    def reset(self) -> None:
        """Forget queued scenarios and recorded requests."""
        with self._lock:
            self._scenarios.clear()
            self.requests.clear()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to the chat endpoints of either vendor, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.vendor is not None]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self) -> Scenario:
        with self._lock:
            return self._scenarios.popleft() if self._scenarios else self.default


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # a benchmark opens many connections at once
    fake: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as the vendors serve
    # Headers and events go out in separate small writes: with Nagle's algorithm on, each
    # would wait for the client's delayed ACK (40 ms) and skew latency measurements.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.fake._record(RecordedRequest("GET", path, self._headers(), None, None))
        if path != "/v1/models":
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})
        elif "anthropic-version" in self.headers:
            model = {"type": "model", "id": "claude-fake", "display_name": "Claude (fake)"}
            model["created_at"] = "2025-01-01T00:00:00Z"
            page = {"data": [model], "has_more": False, "first_id": "claude-fake"}
            self._send_json(200, {**page, "last_id": "claude-fake"})
        else:
            model = {"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?")[0]
        vendor = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}.get(path)
        request = RecordedRequest("POST", path, self._headers(), body, vendor)
        fake._record(request)
        if vendor is None or not isinstance(body, dict):
            self._send_error(vendor or "openai", 404, "not found")
        elif fake.api_key is not None and request.api_key != fake.api_key:
            self._send_error(vendor, 401, f"Incorrect API key provided: {request.api_key}")
        else:
            self._serve(fake._next(), request)

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _serve(self, scenario: Scenario, request: RecordedRequest) -> None:
        vendor = request.vendor or "openai"
        if scenario.kind == "status":
            message = scenario.message or f"fake {scenario.status}"
            self._send_error(vendor, scenario.status, message, scenario.retry_after)
            return
        if scenario.kind == "hang":
            if scenario.send_headers:
                self._start_stream()
            self.server.fake._stopping.wait(scenario.seconds)
            self.close_connection = True
            return
        tokens = self._tokens(scenario, request)
        usage = scenario.usage or (_count_prompt(request), len(tokens))
        model = request.body.get("model", "fake")
        if not request.body.get("stream"):
            whole = (_openai_completion if vendor == "openai" else _anthropic_message)(
                model, "".join(tokens), usage
            )
            self._send_json(200, whole)
            return
        if vendor == "openai":
            include_usage = (request.body.get("stream_options") or {}).get("include_usage")
            include_usage = include_usage and not scenario.omit_usage
            events, head = _openai_events(model, tokens, usage if include_usage else None), 1
        else:
            events, head = _anthropic_events(model, tokens, usage), 3
        if scenario.kind == "cut":
            self._stream(events[: head + scenario.after_tokens], 0.0, complete=False)
            self._close(abrupt=scenario.abrupt)
        else:
            self._stream(events, scenario.delay, complete=True)

    def _tokens(self, scenario: Scenario, request: RecordedRequest) -> tuple[str, ...]:
        if scenario.tokens is not None:
            return scenario.tokens
        if self.server.fake.echo:
            return tuple(re.findall(r"\s*\S+", request.last_user_text)) or DEFAULT_TOKENS
        return DEFAULT_TOKENS

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _stream(self, events: list[bytes], delay: float, *, complete: bool) -> None:
        self._start_stream()
        chunks = [b"".join(events)] if self.server.fake.instant else events
        try:
            for i, chunk in enumerate(chunks):
                if delay and i:
                    self.server.fake._stopping.wait(delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            if complete:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except OSError:  # the client gave up (its timeout, a cancelled answer)
            self.close_connection = True

    def _close(self, *, abrupt: bool) -> None:
        if not abrupt:  # the body ends cleanly, just without the terminal events
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have gone already
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, code: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, vendor: str, code: int, message: str, retry_after: float | None = None
    ) -> None:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        error_type = _ERROR_TYPES.get(code, "api_error" if code >= 500 else "invalid_request")
        if vendor == "anthropic":
            error = {"type": error_type, "message": message}
            payload: dict[str, Any] = {"type": "error", "error": error, "request_id": "req_fake"}
            headers["request-id"] = "req_fake"
        else:
            error = {"message": message, "type": error_type, "param": None, "code": None}
            payload = {"error": error}
            headers["x-request-id"] = "req_fake"
        self._send_json(code, payload, headers)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _count_prompt(request: RecordedRequest) -> int:
    words = request.system.split() + [
        word for m in request.messages for word in _text(m.get("content")).split()
    ]
    return max(1, round(len(words) * 4 / 3))


def _sse(data: object, event: str | None = None) -> bytes:
    line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
    return (f"event: {event}\n{line}" if event else line).encode()


def _openai_events(
    model: str, tokens: tuple[str, ...], usage: tuple[int, int] | None
) -> list[bytes]:
    """As OpenAI streams: a role chunk, one chunk per token, a finish_reason chunk, a usage
    chunk with no choices (only with include_usage), then [DONE]."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time())}
    base |= {"model": model, "system_fingerprint": "fp_fake"}
    if usage is not None:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": token}) for token in tokens]
    events.append(chunk({}, "stop"))
    if usage is not None:
        counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
        events.append(
            _sse({**base, "choices": [], "usage": {**counts, "total_tokens": sum(usage)}})
        )
    events.append(_sse("[DONE]"))
    return events


def _anthropic_events(model: str, tokens: tuple[str, ...], usage: tuple[int, int]) -> list[bytes]:
    """As Anthropic streams: message_start, content_block_start, ping, a text_delta per
    token, content_block_stop, message_delta (stop_reason, output tokens), message_stop."""
    message = _anthropic_message(model, "", (usage[0], 1))
    message |= {"content": [], "stop_reason": None}
    events = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    for token in tokens:
        delta = {"type": "text_delta", "text": token}
        events.append(
            _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        )
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    events += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage[1]}},
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return events


def _openai_completion(model: str, text: str, usage: tuple[int, int]) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": None}
    counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": counts,
    }


def _anthropic_message(model: str, text: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A running fake vendor; register with `pytest_plugins = ["tests.fakes.llm_server"]`
    or import it into a test module."""
    with FakeLLMServer() as server:
        yield server
