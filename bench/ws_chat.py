#!/usr/bin/env python
"""Visitor sockets under load: concurrent conversations, a burst, then many idle sockets.

    .venv/bin/python bench/ws_chat.py [--visitors 50] [--questions 3] [--think 5] [--idle 1000]

Against real daphne processes (`manage.py serve`: one per CPU unless `--processes`) serving
`chatbot.asgi:application` on the development services (`make services-up`), with a
`benchws` tenant whose bot answers from a small handbook through a local fake
OpenAI-compatible LLM that answers instantly (the platform's own overhead is what is
measured). Prints JSON:

- baseline: one visitor alone, questions one after another;
- concurrent: N visitors in conversation at once over real WebSockets, each asking its
  questions after a pause (`--think` seconds on average: reading, typing; the first one
  too, so arrivals spread as real visitors' do): time to first token and to the whole
  answer (p50/p95), errors, ratios to the baseline. The target applies here;
- burst: the same N visitors arriving and asking in the same instant (the worst case);
- idle: daphne's RSS while holding `--idle` open sockets (each answered a ping).

The per-IP limit is off in the bench's daphne (every visitor comes from 127.0.0.1), and the
bot keeps no memory (each question stands alone: no query-rewrite round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")

import django  # noqa: E402

django.setup()

from django_tenants.utils import schema_context  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import WebSocketException  # noqa: E402

from chatbot.celery import app as celery_app  # noqa: E402
from chatbot.models import Bot  # noqa: E402
from knowledge import services as knowledge  # noqa: E402
from knowledge.models import Chunk, KnowledgeBase, Source  # noqa: E402
from tenants.services import create_tenant_site, ensure_public_tenant  # noqa: E402

SCHEMA = "benchws"
WARM_UP_SECONDS = 8
KB_NAME = "Socket bench handbook"
HANDBOOK = {
    "Refunds": "Customers can request a refund within 30 days of delivery. Open the Orders "
    "page, choose the order and press Request refund. Refunds reach the original payment "
    "method within five business days.",
    "Shipping": "We ship to every country in the European Union. Standard delivery takes three "
    "to five business days; express delivery arrives the next business day.",
    "Opening hours": "Our support team answers on weekdays from 9am to 6pm, and on Saturdays "
    "from 10am to 2pm. We are closed on Sundays and public holidays.",
    "Warranty": "Every product carries a two-year warranty against manufacturing defects. "
    "Keep your receipt: the warranty starts on the delivery date.",
    "Accounts": "To reset your password, press Forgot password on the sign-in page and follow "
    "the link we e-mail you. The link expires after one hour.",
}
QUESTIONS = [
    "How do I request a refund?",
    "How long does express delivery take?",
    "When is support open on Saturdays?",
    "How long is the warranty?",
    "How do I reset my password?",
]
FAILURES = (OSError, TimeoutError, WebSocketException)
FAKE_LLM = (
    "import sys\n"
    "from tests.fakes.llm_server import FakeLLMServer\n"
    "server = FakeLLMServer(instant=True)\n"
    "server.start()\n"
    "print(server.openai_url, flush=True)\n"
    "sys.stdin.read()\n"
)


# --- Set-up ----------------------------------------------------------------------------------
def seed(llm_url: str) -> tuple[str, str]:
    """The bench tenant, its handbook (ingested in-process, once) and its bot pointed at
    this run's fake LLM: (host, bot public id)."""
    ensure_public_tenant()
    site = create_tenant_site(SCHEMA, name="Socket benchmarks")
    with schema_context(SCHEMA):
        kb, _ = KnowledgeBase.objects.get_or_create(name=KB_NAME)
        if not Chunk.objects.filter(document__source__knowledge_base=kb).exists():
            celery_app.conf.task_always_eager = True
            try:
                for title, text in HANDBOOK.items():
                    knowledge.add_text_source(kb, title, text)
            finally:
                celery_app.conf.task_always_eager = False
            if Source.objects.filter(knowledge_base=kb).exclude(status="ready").exists():
                raise RuntimeError("the bench handbook did not ingest")
        bot, _ = Bot.objects.update_or_create(
            name="Socket bench bot",
            defaults={
                "provider": Bot.Provider.OPENAI_COMPATIBLE,
                "base_url": llm_url,
                "model": "fake",
                "memory_tokens": 0,
            },
        )
        bot.knowledge_bases.set([kb])
    return site.domain.domain, bot.public_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fake_llm() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_LLM],
        cwd=BASE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_daphne(port: int, log: Path, processes: int) -> subprocess.Popen:
    """`manage.py serve`, as `make run` starts the web: daphne processes on one socket."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbot.settings",
        "PARLEY_IP_REQUESTS_PER_MINUTE": "0",  # every bench visitor is 127.0.0.1
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", str(port)]
    if processes:
        command += ["--processes", str(processes)]
    return subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )


def daphne_pids(supervisor: int) -> list[int]:
    """The daphne processes `manage.py serve` started."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("daphne did not listen")


def rss_mb(supervisor: int) -> float:
    """The daphne processes' resident memory, together."""
    total = 0
    for pid in daphne_pids(supervisor):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def cpu_seconds(supervisor: int) -> float:
    """User + system CPU time of the daphne processes so far (from /proc/<pid>/stat)."""
    return sum(_cpu_seconds(pid) for pid in daphne_pids(supervisor))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# --- Clients ---------------------------------------------------------------------------------
@dataclass
class Target:
    port: int
    host: str
    public_id: str

    async def open(self) -> ClientConnection:
        return await connect(
            f"ws://{self.host}:{self.port}/ws/chat/{self.public_id}/",
            host="127.0.0.1",  # the URI's host name only sets the Host header
            port=self.port,
            origin=f"http://{self.host}",  # type: ignore[arg-type]
            proxy=None,
            compression=None,
            open_timeout=60,
            ping_interval=None,
        )


@dataclass
class Timings:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unanswered: int = 0


async def ask(ws: ClientConnection, visitor: str, question: str, timings: Timings) -> None:
    started = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "text": question, "visitor_id": visitor}))
    first = None
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        if event["type"] == "token" and first is None:
            first = time.perf_counter()
        elif event["type"] == "error":
            timings.errors.append(event["code"])
        elif event["type"] == "done":
            break
    done = time.perf_counter()
    if first is not None:
        timings.ttft.append((first - started) * 1000)
    timings.total.append((done - started) * 1000)
    timings.unanswered += not event["answered"]


async def visitor_session(
    target: Target, questions: int, think: float, timings: Timings, offset: int
) -> None:
    """One visitor: opens a socket, then asks `questions` questions, each after a pause of
    `think` seconds on average (reading the last answer, typing), the first one included so
    that visitors do not all arrive in the same instant; `think=0` asks back to back."""
    rng = random.Random(offset)
    visitor = secrets.token_urlsafe(12)
    try:
        ws = await target.open()
    except FAILURES as exc:  # a refused or failed connection is a result, not a crash
        timings.errors.append(f"connect: {type(exc).__name__}")
        return
    try:
        for n in range(questions):
            if think:
                await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
            await ask(ws, visitor, QUESTIONS[(offset + n) % len(QUESTIONS)], timings)
    except (*FAILURES, ValueError, KeyError) as exc:  # a bad frame is a result too
        timings.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await ws.close()


async def conversations(target: Target, visitors: int, questions: int, think: float) -> Timings:
    timings = Timings()
    await asyncio.gather(
        *(visitor_session(target, questions, think, timings, n) for n in range(visitors))
    )
    return timings


async def hold_idle(target: Target, count: int, pid: int) -> dict[str, Any]:
    """Open `count` sockets (100 handshakes at a time), check each still answers a ping,
    and read daphne's RSS while they are held."""
    gate = asyncio.Semaphore(100)
    failures: list[str] = []

    async def one() -> ClientConnection | None:
        async with gate:
            try:
                return await target.open()
            except FAILURES as exc:
                failures.append(type(exc).__name__)
                return None

    started = time.perf_counter()
    sockets = [ws for ws in await asyncio.gather(*(one() for _ in range(count))) if ws]
    opened_s = time.perf_counter() - started
    await asyncio.sleep(2)
    pongs = await asyncio.gather(*(ws.ping() for ws in sockets), return_exceptions=True)
    alive = await asyncio.gather(
        *(asyncio.wait_for(p, 30) for p in pongs if not isinstance(p, BaseException)),
        return_exceptions=True,
    )
    held = sum(1 for result in alive if not isinstance(result, BaseException))
    rss = rss_mb(pid)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "requested": count,
        "opened": len(sockets),
        "held": held,
        "failed": len(failures),
        "open_seconds": round(opened_s, 2),
        "daphne_rss_mb": rss,
    }


# --- Report ----------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index], 1)


def summary(timings: Timings) -> dict[str, Any]:
    return {
        "questions": len(timings.total),
        "ttft_ms": {"p50": percentile(timings.ttft, 50), "p95": percentile(timings.ttft, 95)},
        "answer_ms": {
            "p50": percentile(timings.total, 50),
            "p95": percentile(timings.total, 95),
        },
        "errors": len(timings.errors),
        "error_kinds": sorted(set(timings.errors)),
        "unanswered": timings.unanswered,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


async def measured(
    pid: int, visitors: int, questions: int, think: float, target: Target
) -> dict[str, Any]:
    """A phase's summary, with daphne's CPU time per question (what caps throughput)."""
    cpu = cpu_seconds(pid)
    result = summary(await conversations(target, visitors, questions, think))
    spent = cpu_seconds(pid) - cpu
    result["daphne_cpu_ms_per_question"] = round(1000 * spent / max(1, result["questions"]), 1)
    return result


async def run(args: argparse.Namespace, target: Target, pid: int) -> dict[str, Any]:
    await conversations(target, 1, 3, 0)  # warm-up: model, connections, SDK imports
    baseline = await measured(pid, 1, args.baseline_questions, 0, target)
    rss_before = rss_mb(pid)
    concurrent = await measured(pid, args.visitors, args.questions, args.think, target)
    burst = await measured(pid, args.visitors, 1, 0, target)
    rss_after = rss_mb(pid)
    idle = await hold_idle(target, args.idle, pid) if args.idle else None
    p95 = concurrent["ttft_ms"]["p95"]
    return {
        "visitors": args.visitors,
        "questions_per_visitor": args.questions,
        "think_seconds": args.think,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "baseline_one_visitor": baseline,
        "concurrent": concurrent,
        "burst_all_at_once": burst,
        "ratios": {
            "ttft_p50_vs_baseline": ratio(concurrent["ttft_ms"]["p50"], baseline["ttft_ms"]["p50"]),
            "ttft_p95_vs_baseline": ratio(p95, baseline["ttft_ms"]["p95"]),
            "answer_p95_vs_baseline": ratio(
                concurrent["answer_ms"]["p95"], baseline["answer_ms"]["p95"]
            ),
            "burst_ttft_p95_vs_baseline": ratio(
                burst["ttft_ms"]["p95"], baseline["ttft_ms"]["p95"]
            ),
        },
        "daphne_rss_mb": {"before_concurrent": rss_before, "after_concurrent": rss_after},
        "idle": idle,
        "targets": {
            "ttft_p95_le_100ms": p95 is not None and p95 <= 100,
            "no_errors": all(not r["errors"] for r in (baseline, concurrent, burst)),
            "idle_sockets_held": idle is None or idle["held"] == args.idle,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=50)
    parser.add_argument("--questions", type=int, default=3, help="per visitor")
    parser.add_argument(
        "--think", type=float, default=5.0, help="mean seconds between a visitor's questions"
    )
    parser.add_argument("--baseline-questions", type=int, default=20)
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets to hold (0: skip)")
    parser.add_argument("--port", type=int, default=0, help="daphne's port (0: a free one)")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="daphne processes (0: serve's default, one per CPU)",
    )
    args = parser.parse_args()

    raise_fd_limit(2 * args.idle + 256)  # ours and daphne's ends of every socket, and more
    llm, llm_url = start_fake_llm()
    port = args.port or free_port()
    daphne = None
    log = BASE_DIR / "var" / "bench-ws-daphne.log"  # daphne's stderr, for a failed run
    try:
        host, public_id = seed(llm_url)
        daphne = start_daphne(port, log, args.processes)
        wait_for_port(port, daphne, log)
        time.sleep(WARM_UP_SECONDS)  # each process loads the embedder at start (asgi.py)
        result = asyncio.run(run(args, Target(port, host, public_id), daphne.pid))
        result["daphne_processes"] = len(daphne_pids(daphne.pid))
    finally:
        for process in (daphne, llm):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
