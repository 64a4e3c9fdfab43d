"""`GET /healthz` on any host: the state of every service Parley needs.

It runs before the tenant middleware so that load balancers and `make run` can ask any
host (a tenant's, the public one, or an IP) and get the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

Check = Callable[[float], str | None]


def check_database(timeout: float) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


def check_redis(timeout: float) -> str | None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return None


def check_chroma(timeout: float) -> str | None:
    response = httpx.get(f"{settings.CHROMA_URL.rstrip('/')}/api/v2/heartbeat", timeout=timeout)
    response.raise_for_status()
    return None


def check_celery(timeout: float) -> str | None:
    from chatbot.celery import app

    # A fresh connection per check: a dead broker must fail fast instead of retrying.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        replies = app.control.ping(timeout=timeout, connection=conn, limit=1)
    if not replies:
        raise RuntimeError("no worker answered")
    return f"{len(replies)} worker(s)"


CHECKS: dict[str, Check] = {
    "database": check_database,
    "redis": check_redis,
    "chroma": check_chroma,
    "celery": check_celery,
}


def run_checks(timeout: float | None = None) -> tuple[bool, dict[str, dict[str, object]]]:
    timeout = timeout or settings.PARLEY_HEALTH_TIMEOUT
    results: dict[str, dict[str, object]] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            ok, note = True, check(timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "down", and says why
            ok, note = False, f"{type(exc).__name__}: {exc}"[:300]
        results[name] = {
            "ok": ok,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            **({"detail": note} if note else {}),
        }
        healthy = healthy and ok
    return healthy, results


class HealthCheckMiddleware:
    path = "/healthz"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.rstrip("/") != self.path:
            return self.get_response(request)
        connection.set_schema_to_public()
        healthy, results = run_checks()
        failing = [name for name, result in results.items() if not result["ok"]]
        body = {"status": "ok" if healthy else "unavailable", "failing": failing, "checks": results}
        return JsonResponse(body, status=200 if healthy else 503)
