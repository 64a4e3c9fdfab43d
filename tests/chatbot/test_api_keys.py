"""API keys: Bearer auth per tenant, stored hashed, shown once, revocable."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.db import connection

from chatbot.models import ApiKey
from chatbot.services import create_api_key
from tests.conftest import HOST_A


@pytest.fixture
def key_a(in_tenant_a):
    key, raw = create_api_key("integration")
    return key, raw


def test_me_names_the_tenant_and_the_key(key_a, client):
    _, raw = key_a
    response = client.get("/api/v1/me/", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert response.json() == {
        "tenant": {"schema": "tenant_a", "name": "Tenant A"},
        "key": {"name": "integration", "prefix": key_a[0].prefix},
    }


def test_the_key_is_stored_hashed_with_a_short_prefix_only(key_a, in_tenant_a):
    key, raw = key_a
    row = ApiKey.objects.get(pk=key.pk)
    assert raw not in {row.key_hash, row.prefix, row.name}
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert len(row.prefix) == 8 and raw.startswith(f"prly_{row.prefix}_")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer prly_00000000_forged"],
)
def test_a_missing_or_bad_key_gets_401_in_the_error_format(db, client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/api/v1/me/", HTTP_HOST=HOST_A, **extra)
    assert response.status_code == 401
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_gets_401(key_a, client, in_tenant_a):
    key, raw = key_a
    key.revoke()
    connection.set_schema_to_public()
    response = client.get("/api/v1/me/", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid or revoked API key."


def test_a_key_with_a_tampered_secret_gets_401(key_a, client):
    _, raw = key_a
    response = client.get(
        "/api/v1/me/", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {raw[:-2]}xx"
    )
    assert response.status_code == 401


def test_api_keys_do_not_work_on_the_public_host(key_a, client):
    _, raw = key_a
    response = client.get("/api/v1/me/", HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 404


def test_the_command_prints_only_the_key(db):
    out = io.StringIO()
    call_command("create_api_key", "tenant_a", "from-cli", stdout=out)
    raw = out.getvalue().strip()
    assert "\n" not in raw and raw.startswith("prly_")
    connection.set_schema_to_public()
    from django_tenants.utils import schema_context

    with schema_context("tenant_a"):
        assert ApiKey.authenticate(raw).name == "from-cli"


def test_the_command_refuses_an_unknown_tenant(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No tenant with schema 'nope'"):
        call_command("create_api_key", "nope", "x")


def test_the_admin_shows_a_new_key_once_and_never_again(alice_client, tenant_a):
    response = alice_client.post("/admin/chatbot/apikey/add/", {"name": "zapier"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    connection.set_tenant(tenant_a)
    key = ApiKey.objects.get(name="zapier")
    marker = f"prly_{key.prefix}_"
    start = page.index(marker)
    raw = page[start : start + len(marker) + 43]
    assert ApiKey.authenticate(raw) == key  # the page showed the real key
    for url in (f"/admin/chatbot/apikey/{key.pk}/change/", "/admin/chatbot/apikey/"):
        later = alice_client.get(url).content.decode()
        assert raw not in later and raw[len(marker) :] not in later
        assert marker in later  # the prefix identifies it


def test_the_admin_revokes_keys(alice_client, tenant_a):
    connection.set_tenant(tenant_a)
    key, raw = create_api_key("old")
    connection.set_schema_to_public()
    response = alice_client.post(
        "/admin/chatbot/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    connection.set_tenant(tenant_a)
    assert ApiKey.authenticate(raw) is None
