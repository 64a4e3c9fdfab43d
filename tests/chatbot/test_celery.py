"""Tasks run in the schema of the tenant that sent them, in a real worker process."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

from chatbot.celery import send_in_schema
from chatbot.tasks import ping


def test_a_task_sent_from_tenant_a_runs_in_tenant_a(celery_worker, tenant_a):
    connection.set_tenant(tenant_a)
    result = ping.delay().get(timeout=30)
    assert result == {"schema": "tenant_a", "users": ["alice", "bob"]}


def test_a_task_sent_from_tenant_b_sees_only_tenant_b(celery_worker, tenant_b):
    with schema_context("tenant_b"):
        result = ping.delay().get(timeout=30)
    assert result == {"schema": "tenant_b", "users": ["charlie"]}


def test_an_explicit_schema_wins_over_the_senders_connection(celery_worker, db):
    # What an async consumer does: its event loop's connection is on the public schema.
    assert connection.schema_name == "public"
    result = send_in_schema(ping, "tenant_a").get(timeout=30)
    assert result["schema"] == "tenant_a"
