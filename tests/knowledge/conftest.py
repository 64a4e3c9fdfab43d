"""Knowledge fixtures: Celery tasks run eagerly, in-process, on the test transaction (the
real-worker path has its own tests), and each test's Chroma collections are dropped after."""

from __future__ import annotations

import pytest
from django.db import connection

from chatbot.celery import app
from knowledge import index
from knowledge.models import KnowledgeBase


@pytest.fixture
def eager_tasks():
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


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
