"""`manage.py serve`: the web process, as several daphne processes sharing one listening
socket (the kernel spreads connections among them).

One daphne process runs Python on one core at a time (the GIL), and every answer costs it
tens of milliseconds of CPU (saving the turn, the query embedding, retrieval, the LLM SDK):
with one process, 50 concurrent conversations queue on a single core (bench/ws_chat.py).
Channels' groups live in Redis, so sockets of one conversation may sit in different
processes. Ctrl-C or SIGTERM stops them all; if one dies, the others are stopped too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with one daphne process per CPU on a shared socket."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.PARLEY_WEB_PROCESSES or cpu_count(),
            help="daphne processes (default: PARLEY_WEB_PROCESSES, else one per CPU)",
        )

    def handle(self, *args, bind: str, port: int, processes: int, **options) -> None:  # type: ignore[no-untyped-def]
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((bind, port))
        except OSError as exc:
            raise CommandError(f"cannot listen on {bind}:{port}: {exc}") from None
        listener.listen(1024)
        env = dict(os.environ)
        # The local embedder's threads, split among the processes (unless configured).
        env.setdefault("PARLEY_EMBED_THREADS", str(max(1, cpu_count() // processes)))
        command = [
            sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "--proxy-headers",
            "chatbot.asgi:application",
        ]  # fmt: skip
        children = [
            subprocess.Popen(command, pass_fds=[listener.fileno()], env=env)
            for _ in range(processes)
        ]
        listener.close()  # the children hold it
        self.stderr.write(f"serving on {bind}:{port} with {processes} daphne process(es)")
        self.supervise(children)

    def supervise(self, children: list[subprocess.Popen]) -> None:
        crashed = False

        def stop(signum: int, frame: object) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while True:
            if any(child.poll() is not None for child in children):
                crashed = not all(child.poll() is not None for child in children)
                if crashed:
                    self.stderr.write("a daphne process exited: stopping the others")
                stop(signal.SIGTERM, None)
                break
            time.sleep(0.5)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if crashed:
            sys.exit(1)
