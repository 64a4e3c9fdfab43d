"""Anthropic's Messages API through the official `anthropic` SDK, streamed.

Usage comes from the stream itself: input tokens in `message_start` (cache reads and
writes included), the cumulative output count in `message_delta`. The current Messages
API takes no `temperature`, so `LLMRequest.temperature` does not apply here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anthropic

from chatbot.llm.base import ChatMessage, LLMRequest, Token, Usage
from chatbot.llm.sdk import (
    SDKProvider,
    Within,
    as_dicts,
    estimated_usage,
    shared_http_client,
    stream_ended_early,
)


class AnthropicProvider(SDKProvider):
    name = "anthropic"
    sdk = anthropic

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # The SDK appends /v1/messages itself; accept a base URL given with its /v1.
        path = urlsplit(self.base_url).path.rstrip("/")
        if path.endswith("/v1"):
            self.base_url = self.base_url.rstrip("/")[: -len("/v1")]

    def _client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url or None,
            timeout=self.timeouts.for_httpx(),
            max_retries=0,
            http_client=shared_http_client("anthropic", anthropic.DefaultAsyncHttpxClient),
        )

    def _parameters(self, request: LLMRequest) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": as_dicts(alternating(request.messages)),
            "stream": True,
        }
        if request.system:
            parameters["system"] = request.system
        return parameters

    async def _attempt(
        self, request: LLMRequest, within: Within[Any]
    ) -> AsyncIterator[Token | Usage]:
        stream = await within(
            self._client().messages.create(
                **self._parameters(request), timeout=self.timeouts.for_httpx()
            )
        )
        parts: list[str] = []
        input_tokens: int | None = None
        output_tokens: int | None = None
        finished = False
        try:
            while (event := await within(anext(stream, None))) is not None:
                if event.type == "message_start":
                    input_tokens = _input_tokens(event.message.usage)
                    output_tokens = event.message.usage.output_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    yield Token(event.delta.text)
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens  # cumulative
                    if event.usage.input_tokens is not None:
                        input_tokens = _input_tokens(event.usage)
                    finished = finished or event.delta.stop_reason is not None
                elif event.type == "message_stop":
                    finished = True
        except Exception:
            if not finished:
                raise
            # The answer and its usage are whole; only message_stop was lost.
        finally:
            await stream.close()
        # The SDK ends a stream silently when the server closes it cleanly mid-answer.
        if not finished:
            raise stream_ended_early(self.name)
        if input_tokens is None or output_tokens is None:
            yield estimated_usage(request, "".join(parts))
        else:
            yield Usage(input_tokens, output_tokens)


def _input_tokens(usage: Any) -> int:
    return (
        (usage.input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )


def alternating(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Messages starting with a user turn, with consecutive turns of one role merged: the
    shape the Messages API asks for (a history may open with the bot's greeting)."""
    merged: list[ChatMessage] = []
    for message in messages:
        if not merged and message.role != "user":
            continue
        if merged and merged[-1].role == message.role:
            joined = f"{merged[-1].content}\n\n{message.content}"
            merged[-1] = ChatMessage(message.role, joined)
        else:
            merged.append(message)
    return merged
