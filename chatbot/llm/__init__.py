"""LLM providers: OpenAI, Anthropic, OpenAI-compatible servers, and the offline extractive
mode, behind one streaming interface (see docs/providers.md).

    provider = get_provider(bot.provider, api_key=bot.api_key, base_url=bot.base_url)
    async for item in stream_with_retries(provider, request):
        ...  # Token deltas, then one Usage; ProviderError on failure

The SDK-backed providers are imported on first use: the SDKs take seconds to import.
"""

from __future__ import annotations

from django.conf import settings

from chatbot.llm.base import (
    ChatMessage,
    LLMRequest,
    Passage,
    Provider,
    ProviderError,
    Token,
    Usage,
    collect,
    estimate_tokens,
)
from chatbot.llm.retry import backoff_delay, complete_with_retries, stream_with_retries

__all__ = [
    "PROVIDERS",
    "ChatMessage",
    "LLMRequest",
    "Passage",
    "Provider",
    "ProviderError",
    "Token",
    "Usage",
    "backoff_delay",
    "collect",
    "complete_with_retries",
    "estimate_tokens",
    "get_provider",
    "stream_with_retries",
]

PROVIDERS = ("extractive", "openai", "anthropic", "openai_compatible")


def get_provider(
    provider: str, *, api_key: str = "", base_url: str = "", timeout: float | None = None
) -> Provider:
    """The provider for a `Bot.provider` value. `timeout` bounds one attempt, in seconds
    (default `PARLEY_LLM_TIMEOUT`); connect and read timeouts never exceed it.

    A missing key or base URL is reported by the first `stream()` call, as a
    `ProviderError`, so that callers handle every failure in one place.
    """
    if provider == "extractive":
        from chatbot.llm.extractive import ExtractiveProvider

        return ExtractiveProvider()
    if provider not in PROVIDERS:
        raise ValueError(f"unknown LLM provider {provider!r}")

    from chatbot.llm.sdk import Timeouts

    total = float(timeout if timeout is not None else settings.PARLEY_LLM_TIMEOUT)
    timeouts = Timeouts(
        total=total,
        connect=min(settings.PARLEY_LLM_CONNECT_TIMEOUT, total),
        read=min(settings.PARLEY_LLM_READ_TIMEOUT, total),
    )
    options = {"api_key": api_key.strip(), "base_url": base_url.strip(), "timeouts": timeouts}
    if provider == "anthropic":
        from chatbot.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(**options)
    from chatbot.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(name=provider, **options)
