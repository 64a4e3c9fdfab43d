"""Shared helpers for the web tests: fake DNS, fast limits, running coroutines."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from knowledge.web.fetcher import FetchLimits

T = TypeVar("T")
LOCAL = ["127.0.0.0/8", "::1/128"]
FAST = FetchLimits(host_delay=0.0, connect_timeout=5, read_timeout=5, total_timeout=20)
REAL_GETADDRINFO = socket.getaddrinfo


def run(coroutine: Awaitable[T]) -> T:
    """Run a coroutine to completion in a fresh event loop (no pytest-asyncio needed)."""

    async def wrapper() -> T:
        return await coroutine

    return asyncio.run(wrapper())


def fake_dns(
    monkeypatch: pytest.MonkeyPatch, resolver: Callable[[str], list[str] | None]
) -> list[str]:
    """Resolve names through ``resolver`` (None: the real resolver); returns the names asked."""
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        addresses = resolver(host)
        if addresses is None:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        asked.append(host)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked
