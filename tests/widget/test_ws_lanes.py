"""Visitor sockets run their database work on a few long-lived lanes: one conversation's
calls on one thread, in order; different visitors' calls side by side, not queued behind
one shared thread."""

from __future__ import annotations

import asyncio
import threading
import time

from asgiref.sync import async_to_sync, sync_to_async

from widget.consumers import db_lane


def blocking_call(seconds: float) -> int:
    time.sleep(seconds)
    return threading.get_ident()


async def conversation(calls: int) -> list[int]:
    """Thread-sensitive calls, as chatbot.answering.in_tenant makes them, inside a lane."""
    async with db_lane():
        return [await sync_to_async(blocking_call)(0.1) for _ in range(calls)]


def test_one_conversation_stays_on_one_thread_and_others_run_beside_it(settings):
    settings.PARLEY_SOCKET_DB_THREADS = 4

    async def scenario():  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        threads = await asyncio.gather(*(conversation(2) for _ in range(4)))
        return threads, time.perf_counter() - started

    threads, seconds = async_to_sync(scenario)()
    assert all(len(set(each)) == 1 for each in threads)  # in order, on its lane
    assert len({each[0] for each in threads}) == 4  # four lanes
    assert threading.get_ident() not in {each[0] for each in threads}
    assert seconds < 0.6  # 8 calls of 0.1 s: side by side, not one after another


def test_zero_threads_falls_back_to_one_shared_thread(settings):
    settings.PARLEY_SOCKET_DB_THREADS = 0

    async def scenario():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*(conversation(1) for _ in range(3)))

    threads = async_to_sync(scenario)()
    assert len({each[0] for each in threads}) == 1
