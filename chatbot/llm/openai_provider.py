"""OpenAI, and servers speaking its Chat Completions protocol (Ollama, vLLM, llama.cpp,
Groq…), through the official `openai` SDK.

The SDK's own retries are off (`max_retries=0`): `stream_with_retries` decides, because
only it knows whether a token has already reached the visitor.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import openai

from chatbot.llm.base import LLMRequest, ProviderError, Token, Usage
from chatbot.llm.sdk import (
    SDKProvider,
    Within,
    as_dicts,
    estimated_usage,
    shared_http_client,
    stream_ended_early,
)

# Local servers (Ollama, llama.cpp) ignore the key, but the SDK insists on one.
NO_KEY_PLACEHOLDER = "not-needed"
# OpenAI's reasoning models refuse any temperature but their default.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


class OpenAIProvider(SDKProvider):
    """`name` is "openai", or "openai_compatible" for a server at `base_url`."""

    sdk = openai

    def __init__(self, *, name: str = "openai", **options: Any) -> None:
        super().__init__(**options)
        self.name = name
        self.needs_key = name == "openai"
        if name == "openai_compatible":
            self.base_url = compatible_base_url(self.base_url)

    def _check_configuration(self) -> None:
        if self.name == "openai_compatible" and not self.base_url:
            raise ProviderError("bad_request", f"{self.name}: no base URL configured")
        super()._check_configuration()

    def _client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self.api_key or NO_KEY_PLACEHOLDER,
            base_url=self.base_url or None,
            timeout=self.timeouts.for_httpx(),
            max_retries=0,
            http_client=shared_http_client("openai", openai.DefaultAsyncHttpxClient),
        )

    def _parameters(self, request: LLMRequest) -> dict[str, Any]:
        messages = as_dicts(request.messages)
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        # OpenAI's reasoning models refuse the older `max_tokens`; compatible servers do
        # not all know the newer name.
        limit = "max_completion_tokens" if self.name == "openai" else "max_tokens"
        parameters = {
            "model": request.model,
            "messages": messages,
            limit: request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if not (self.name == "openai" and REASONING_MODEL.match(request.model)):
            parameters["temperature"] = request.temperature
        return parameters

    async def _attempt(
        self, request: LLMRequest, within: Within[Any]
    ) -> AsyncIterator[Token | Usage]:
        stream = await within(
            self._client().chat.completions.create(
                **self._parameters(request), timeout=self.timeouts.for_httpx()
            )
        )
        parts: list[str] = []
        usage: Usage | None = None
        finished = False
        try:
            while (chunk := await within(anext(stream, None))) is not None:
                if chunk.usage is not None:  # the last chunk, after finish_reason
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield Token(choice.delta.content)
                    finished = finished or choice.finish_reason is not None
        except Exception:
            if not finished:
                raise
            # The answer is whole; only the usage chunk or [DONE] was lost.
        finally:
            await stream.close()
        # The SDK ends a stream silently when the server closes it cleanly mid-answer.
        if not finished:
            raise stream_ended_early(self.name)
        # Some compatible servers ignore stream_options and send no usage.
        yield usage or estimated_usage(request, "".join(parts))


def compatible_base_url(base_url: str) -> str:
    """Ollama, vLLM and llama.cpp serve the protocol under /v1: a bare server address
    (http://localhost:11434) gets it appended; any other path is kept as given."""
    base_url = base_url.strip()
    if base_url and urlsplit(base_url).path in {"", "/"}:
        return base_url.rstrip("/") + "/v1"
    return base_url
