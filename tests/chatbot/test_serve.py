"""`manage.py serve`: several daphne processes on one socket, stopped together."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import BASE_DIR, suite_env
from tests.widget.browser import free_port


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_serve_runs_daphne_processes_on_one_port_and_stops_them_together(django_db_setup):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--processes", "2"],
        cwd=BASE_DIR,
        env=suite_env({"PARLEY_WARM_UP": "false"}),
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        answered = 0
        while time.monotonic() < deadline and answered < 4:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    answered += 1
            except urllib.error.HTTPError as error:  # 503: up, no worker in this test
                answered += error.code == 503
            except OSError:
                time.sleep(0.3)
        assert answered == 4
        daphnes = children(server.pid)
        assert len(daphnes) == 2
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    for pid in daphnes:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert b"with 2 daphne process(es)" in server.stderr.read()
