"""The provider interface: request and stream item types, the error every provider raises,
and an offline token estimate.

A provider turns an `LLMRequest` into a stream of `Token` deltas followed by exactly one
`Usage`. Every failure surfaces as a `ProviderError` whose `code` says what went wrong and
whether trying again may help; vendor SDK exceptions never leak past a provider.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = [
    "ChatMessage",
    "LLMRequest",
    "Passage",
    "Provider",
    "ProviderError",
    "Token",
    "Usage",
    "estimate_tokens",
]


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Passage:
    """A retrieved passage, numbered as it is cited: `[1]` refers to number 1."""

    number: int
    text: str
    title: str
    url: str
    heading_path: tuple[str, ...] = ()


@dataclass
class LLMRequest:
    system: str  # the full system prompt, built by the caller
    messages: list[ChatMessage]  # history and the final user turn, built by the caller
    model: str
    temperature: float = 0.2
    max_tokens: int = 600
    question: str = ""  # the visitor's question (the extractive provider answers it)
    passages: list[Passage] = field(default_factory=list)  # (the extractive provider's source)


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool = False


# Codes for which another attempt may succeed (before the first token only: see retry.py).
RETRYABLE_CODES = frozenset({"rate_limited", "provider_error", "timeout", "connection"})

VISITOR_MESSAGES = {
    "rate_limited": "I'm getting a lot of questions right now. Please try again in a moment.",
    "provider_error": "I can't answer right now. Please try again in a moment.",
    "timeout": "I'm taking too long to answer. Please try again in a moment.",
    "connection": "I can't answer right now. Please try again in a moment.",
    "interrupted": "Sorry, my answer was cut off. Please ask again.",
    # Configuration problems (wrong key, unknown model): retrying will not help the visitor.
    "auth": "I can't answer right now. Please try again later or ask to talk to a person.",
    "bad_request": "I can't answer that right now. Please try again later or ask to talk to "
    "a person.",
}


class ProviderError(Exception):
    """A failed provider call.

    `code` is one of "rate_limited", "provider_error", "timeout", "connection",
    "interrupted", "auth", "bad_request"; `retryable` says whether another attempt may
    succeed; `status` is the HTTP status when there was one; `retry_after` the delay the
    server asked for, in seconds. `str(error)` is a short technical message for logs that
    never contains the API key; `visitor_message` is safe to show a website visitor.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        if code not in VISITOR_MESSAGES:
            raise ValueError(f"unknown provider error code {code!r}")
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable
        self.retry_after = retry_after

    @property
    def visitor_message(self) -> str:
        return VISITOR_MESSAGES[self.code]

    def __repr__(self) -> str:
        return f"ProviderError({self.code!r}, {str(self)!r}, status={self.status!r})"


class Provider(ABC):
    """One LLM vendor (or the offline extractive mode)."""

    name: str  # "openai" | "anthropic" | "openai_compatible" | "extractive"

    @abstractmethod
    def stream(self, request: LLMRequest) -> AsyncIterator[Token | Usage]:
        """One attempt: yields `Token` deltas, then exactly one `Usage`; raises
        `ProviderError` on any failure (code "interrupted" once tokens were yielded)."""

    async def complete(self, request: LLMRequest) -> tuple[str, Usage]:
        """The whole answer at once (query rewriting and other short, internal calls)."""
        return await collect(self.stream(request))


async def collect(items: AsyncIterator[Token | Usage]) -> tuple[str, Usage]:
    """Join a token stream into its text and final usage."""
    parts: list[str] = []
    usage: Usage | None = None
    async for item in items:
        if isinstance(item, Token):
            parts.append(item.text)
        else:
            usage = item
    if usage is None:
        raise ProviderError("interrupted", "the stream ended without usage")
    return "".join(parts), usage


# Scripts written without spaces between words, where one character is about one token.
_DENSE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Estimate the number of tokens of `text`, offline.

    BPE tokenizers of current models average about 4 characters, or 0.75 words, per token
    of English. Either rule alone drifts (long words, code, numbers and punctuation), so
    this averages both, counting punctuation marks as words; characters of CJK scripts
    count one token each. It is an estimate for budgets and for usage figures marked
    `estimated`; tiktoken is not used because it downloads its vocabulary at run time.
    """
    if not text:
        return 0
    dense = len(_DENSE_SCRIPT.findall(text))
    rest = _DENSE_SCRIPT.sub(" ", text) if dense else text
    words = len(_WORD.findall(rest))
    chars = len(rest.strip())
    return dense + math.ceil((chars / 4 + words / 0.75) / 2)
