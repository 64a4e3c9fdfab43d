"""Vendor SDK and transport exceptions → `ProviderError`, with secrets kept out.

Both SDKs share one exception shape (`APIStatusError`, `APITimeoutError`,
`APIConnectionError`, `APIError`), so one mapping serves both. The Anthropic SDK lets
transport errors raised while reading a stream escape unwrapped, hence the `httpx2` cases.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx2  # the transport of both SDKs (openai >= 3, anthropic >= 2)

from chatbot.llm.base import ProviderError

# Anything shaped like a vendor key (OpenAI sk-…, Anthropic sk-ant-…, Groq gsk_…), in case a
# server echoes one back in an error body: defence in depth behind redacting the known key.
_KEY_LIKE = re.compile(r"\b(?:sk|gsk|key|pk)[-_][A-Za-z0-9_\-]{12,}")
_MAX_DETAIL = 200


def redact(text: str, secret: str) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


def map_error(
    exc: BaseException, *, vendor: str, sdk: ModuleType, secret: str
) -> tuple[ProviderError, bool]:
    """The `ProviderError` for an exception of a vendor SDK or its transport, and whether
    to chain the original (not when its message may quote a response body: the vendor
    words those, and one might quote the key back)."""
    if isinstance(exc, sdk.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        return ProviderError("timeout", f"{vendor}: no response within the time limit"), True
    if isinstance(exc, sdk.APIConnectionError | httpx2.TransportError):
        cause = exc.__cause__ if isinstance(exc, sdk.APIConnectionError) else exc
        detail = redact(f"{type(cause).__name__}: {cause}", secret)[:_MAX_DETAIL]
        return ProviderError("connection", f"{vendor}: connection failed ({detail})"), True
    if isinstance(exc, sdk.APIStatusError):
        # Anthropic reports an error event inside a streamed 200 response as a status error.
        status = exc.status_code if exc.status_code >= 400 else None
        return _status_error(vendor, status, exc.body, exc.response.headers, secret), False
    if isinstance(exc, sdk.APIError):  # an error event inside a streamed 200 response
        return _status_error(vendor, None, exc.body, {}, secret), False
    detail = redact(f"{type(exc).__name__}: {exc}", secret)[:_MAX_DETAIL]
    return ProviderError("provider_error", f"{vendor}: unexpected failure ({detail})"), False


def _status_error(
    vendor: str, status: int | None, body: object, headers: Mapping[str, str], secret: str
) -> ProviderError:
    error_type, message = _error_fields(body)
    summary = f"{vendor}: HTTP {status}" if status else f"{vendor}: error event in the stream"
    if error_type:
        summary += f" {error_type}"
    if message:
        summary += f": {message}"
    summary = redact(summary, secret)[: _MAX_DETAIL + 80]
    return ProviderError(
        _code_for(status, error_type),
        summary,
        status=status,
        retry_after=retry_after_seconds(headers),
    )


def _code_for(status: int | None, error_type: str) -> str:
    if status == 429 or error_type in {"rate_limit_error", "rate_limit_exceeded"}:
        return "rate_limited"
    if status in {401, 403}:
        return "auth"
    if status == 408:
        return "timeout"
    if status is None or status == 409 or status >= 500:
        return "provider_error"
    return "bad_request"


def _error_fields(body: object) -> tuple[str, str]:
    """(type, message) of an error body: OpenAI's `{"error": {...}}` (the SDK unwraps it) or
    Anthropic's `{"type": "error", "error": {...}}`."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if not isinstance(body, Mapping):
        return "", str(body or "")[:_MAX_DETAIL]
    error_type: Any = body.get("type") or body.get("code") or ""
    message: Any = body.get("message") or ""
    return str(error_type), str(message)[:_MAX_DETAIL]


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay a server asked for: `retry-after-ms` (OpenAI), `retry-after` in seconds or
    as an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
