"""Shared fixtures: two tenants made once per test session, alice and bob (staff) in
tenant A, charlie in tenant B; clients for their hosts and API clients; a real Celery
worker; eager tasks (the real-worker path has its own tests) and Chroma collections
dropped after each test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from chatbot.celery import app as celery_app
from chatbot.services import create_api_key
from knowledge import index
from knowledge.models import KnowledgeBase
from tenants.models import Tenant
from tenants.services import create_tenant_site, ensure_public_tenant

BASE_DIR = Path(__file__).resolve().parent.parent
# `llm_server`: a local server speaking the OpenAI and Anthropic wire protocols.
pytest_plugins = ["tests.fakes.llm_server"]
HOST_A = "a.localhost"
HOST_B = "b.localhost"
PASSWORD = "correct horse battery staple"


def make_user(schema: str, username: str, **extra) -> None:
    with schema_context(schema):
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_user(username, f"{username}@example.com", PASSWORD, **extra)


@pytest.fixture(scope="session")
def django_db_setup(
    request, django_test_environment, django_db_blocker, django_db_keepdb, django_db_createdb
):
    """The test database, always (pytest-django sets it up only when a collected test asks
    for `db`; WebSocket and worker tests run outside transactions and must never reach a
    developer's database), with tenants A and B and their users, made once per session."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            verbosity=request.config.option.verbose,
            interactive=False,
            keepdb=django_db_keepdb and not django_db_createdb,
            aliases={"default"},
        )
        assert connection.settings_dict["NAME"].startswith("test_"), "not the test database"
        ensure_public_tenant()
        create_tenant_site("tenant_a", HOST_A, name="Tenant A")
        create_tenant_site("tenant_b", HOST_B, name="Tenant B")
        make_user("tenant_a", "alice", is_staff=True, is_superuser=True)
        make_user("tenant_a", "bob", is_staff=True)
        make_user("tenant_b", "charlie", is_staff=True, is_superuser=True)
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def _public_schema_after_each_test():
    yield
    connection.set_schema_to_public()


@pytest.fixture
def tenant_a(db) -> Tenant:
    return Tenant.objects.get(schema_name="tenant_a")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return Tenant.objects.get(schema_name="tenant_b")


@pytest.fixture
def in_tenant_a(tenant_a):
    connection.set_tenant(tenant_a)
    yield tenant_a
    connection.set_schema_to_public()


@pytest.fixture
def in_tenant_b(tenant_b):
    connection.set_tenant(tenant_b)
    yield tenant_b
    connection.set_schema_to_public()


def logged_in_client(tenant: Tenant, host: str, username: str) -> Client:
    client = Client(HTTP_HOST=host)
    connection.set_tenant(tenant)  # the session row is written in the tenant's schema
    client.force_login(get_user_model().objects.get(username=username))
    connection.set_schema_to_public()
    return client


@pytest.fixture
def alice_client(tenant_a) -> Client:
    return logged_in_client(tenant_a, HOST_A, "alice")


@pytest.fixture
def charlie_client(tenant_b) -> Client:
    return logged_in_client(tenant_b, HOST_B, "charlie")


def suite_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a process started by the suite: test settings, test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbot.settings_test",
        "PARLEY_TEST_WORKER": "1",
        **(extra_env or {}),
    }


def start_worker(
    extra_env: dict[str, str] | None = None, queue: str | None = None
) -> subprocess.Popen:
    """A real Celery worker process working on the test database and test queue."""
    env = suite_env(extra_env)
    queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
    env["PARLEY_TEST_CELERY_QUEUE"] = queue
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "chatbot",
            "worker",
            "--queues",
            queue,
            "--concurrency",
            "1",
            "--loglevel",
            os.environ.get("PARLEY_TEST_WORKER_LOGLEVEL", "WARNING"),
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,  # so that a test can kill the worker and its pool at once
    )


def wait_for_worker(app, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.connection_for_write() as conn:
            if app.control.ping(timeout=0.5, connection=conn, limit=1):
                return
    raise TimeoutError(f"the Celery worker did not answer within {timeout}s")


def stop_worker(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.fixture(scope="module")
def celery_worker(django_db_setup):
    """A worker for the tests of one module. Module scope: tests that run workers of their
    own (killing one, or on another broker) never share the test queue with this one."""
    from chatbot.celery import app

    worker = start_worker()
    try:
        wait_for_worker(app)
        yield worker
    finally:
        stop_worker(worker)


@pytest.fixture
def committed_session(django_db_setup, django_db_blocker):
    """Session cookies for WebSocket tests. Consumers reach the DB through
    `database_sync_to_async`, which closes a connection that sits in a transaction, so these
    tests run outside the per-test transaction on rows committed here and removed after."""
    from django.contrib.sessions.backends.db import SessionStore

    made: list[tuple[str, str]] = []

    def make(schema: str, username: str) -> str:
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

        with django_db_blocker.unblock(), schema_context(schema):
            user = get_user_model().objects.get(username=username)
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
        made.append((schema, store.session_key))
        return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"

    yield make
    with django_db_blocker.unblock():
        for schema, key in made:
            with schema_context(schema):
                SessionStore(key).delete()


# --- API clients ------------------------------------------------------------------------
@pytest.fixture
def api_a(in_tenant_a, client):
    """An API client of tenant A; the connection is left on tenant A's schema."""
    _, raw = create_api_key("tests")
    client.defaults.update(HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api_b(tenant_b):
    """Charlie's API client, on tenant B's host."""
    connection.set_tenant(tenant_b)
    _, raw = create_api_key("charlie")
    connection.set_schema_to_public()
    return Client(HTTP_HOST=HOST_B, HTTP_AUTHORIZATION=f"Bearer {raw}")


# --- Knowledge ----------------------------------------------------------------------------
@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks, eager_tasks):
    """Run a service call and then its on-commit work (task sends, vector deletes)."""

    def run(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return run


@pytest.fixture
def drop_collections():
    names: list[str] = []
    yield names
    for name in names:
        index.drop(name)


@pytest.fixture
def kb_a(tenant_a, drop_collections) -> KnowledgeBase:
    """A knowledge base of tenant A; the connection is left on tenant A's schema."""
    connection.set_tenant(tenant_a)
    kb = KnowledgeBase.objects.create(name="Handbook")
    drop_collections.append(kb.collection_name)
    return kb
