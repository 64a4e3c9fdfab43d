"""`create_tenant_site` is idempotent and validates its input."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.models import Domain, Tenant


def test_running_it_again_changes_nothing_but_what_was_asked(db):
    out = io.StringIO()
    args = [
        "tenant_a",
        "--domain",
        "a.localhost",
        "--admin-email",
        "boss@a.example",
        "--admin-password",
        "s3cret-pass",
    ]
    call_command("create_tenant_site", *args, stdout=out)
    call_command("create_tenant_site", *args, stdout=out)
    assert out.getvalue().count("Updated tenant tenant_a at a.localhost") == 2
    assert Tenant.objects.filter(schema_name="tenant_a").count() == 1
    assert Domain.objects.filter(domain="a.localhost").count() == 1
    connection.set_tenant(Tenant.objects.get(schema_name="tenant_a"))
    user = authenticate(username="boss@a.example", password="s3cret-pass")
    assert user is not None and user.is_staff and user.is_superuser


@pytest.mark.parametrize("schema", ["Bad-Name", "public", "1abc", "pg_x", "a" * 64])
def test_bad_schema_names_are_refused(db, schema):
    with pytest.raises(CommandError, match="Invalid schema name"):
        call_command("create_tenant_site", schema)


def test_a_host_of_another_tenant_is_refused(db):
    with pytest.raises(CommandError, match="already belongs to tenant"):
        call_command("create_tenant_site", "tenant_b", "--domain", "a.localhost")


def test_a_password_needs_an_email(db):
    with pytest.raises(CommandError, match="--admin-password needs --admin-email"):
        call_command("create_tenant_site", "tenant_a", "--admin-password", "x")
