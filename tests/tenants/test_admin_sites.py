"""The public host's admin is for platform superusers; a tenant's admin for its staff."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.conftest import HOST_A


@pytest.fixture
def platform_client(db, client):
    connection.set_schema_to_public()
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_platform_superusers_manage_tenants_on_the_public_host(
    platform_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = platform_client.get("/admin/tenants/tenant/", HTTP_HOST="localhost")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Tenant A" in page and "a.localhost" in page and "Tenant B" in page
    assert platform_client.get("/admin/tenants/domain/", HTTP_HOST="localhost").status_code == 200
    index = platform_client.get("/admin/", HTTP_HOST="localhost").content.decode()
    assert "Periodic tasks" in index and "Parley platform" in index


def test_non_superuser_staff_cannot_use_the_platform_admin(db, client):
    connection.set_schema_to_public()
    staff = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    response = client.get("/admin/tenants/tenant/", HTTP_HOST="localhost")
    assert response.status_code == 302


def test_a_tenant_admin_shows_no_platform_models(alice_client):
    page = alice_client.get("/admin/").content.decode()
    assert "API keys" in page and "Users" in page
    assert "Tenants" not in page and "Periodic tasks" not in page
    assert alice_client.get("/admin/tenants/tenant/").status_code == 404
    assert alice_client.get("/admin/django_celery_beat/periodictask/").status_code == 404


def test_a_tenant_user_is_unknown_on_the_public_host(alice_client):
    response = alice_client.get("/admin/", HTTP_HOST="localhost")
    assert response.status_code == 302


def test_the_admin_is_branded(client, db):
    page = client.get("/admin/login/", HTTP_HOST=HOST_A).content.decode()
    assert "Parley" in page and "parley/admin.css" in page
