"""Nothing crosses tenants: charlie (tenant B) cannot read tenant A through the admin,
the API or a WebSocket; unknown hosts reach nothing."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import connection

from chatbot.asgi import application
from chatbot.services import create_api_key
from tests.conftest import HOST_A, HOST_B


def ws_connect(host: str, path: str = "/ws/ping/", cookie: str = ""):  # type: ignore[no-untyped-def]
    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))

    async def run():  # type: ignore[no-untyped-def]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=5)
        reply = None
        if connected:
            await communicator.send_json_to({"echo": "hi"})
            reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return connected, code, reply

    return async_to_sync(run)()


def test_alice_opens_her_tenants_admin(alice_client):
    response = alice_client.get("/admin/")
    assert response.status_code == 200
    assert b"Tenant A" in response.content


def test_charlie_session_does_not_open_tenant_a_admin(charlie_client):
    assert charlie_client.get("/admin/").status_code == 200  # his own tenant: yes
    response = charlie_client.get("/admin/", HTTP_HOST=HOST_A)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    response = charlie_client.get("/admin/auth/user/", HTTP_HOST=HOST_A)
    assert response.status_code == 302


def test_charlie_cannot_log_in_to_tenant_a(tenant_a, client):
    from tests.conftest import PASSWORD

    response = client.post(
        "/admin/login/",
        {"username": "charlie", "password": PASSWORD},
        HTTP_HOST=HOST_A,
    )
    assert response.status_code == 200  # the form again, with an error
    assert b"Please enter the correct username and password" in response.content


def test_charlie_key_is_unknown_on_tenant_a(in_tenant_b, client):
    _, raw = create_api_key("charlie's key")
    connection.set_schema_to_public()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    mine = client.get("/api/v1/me/", HTTP_HOST=HOST_B, **auth)
    assert mine.status_code == 200
    assert mine.json()["tenant"]["schema"] == "tenant_b"
    theirs = client.get("/api/v1/me/", HTTP_HOST=HOST_A, **auth)
    assert theirs.status_code == 401
    assert theirs.json()["error"]["code"] == "authentication_failed"


def test_charlie_socket_is_refused_on_tenant_a(committed_session, django_db_blocker):
    cookie = committed_session("tenant_b", "charlie")
    with django_db_blocker.unblock():
        own = ws_connect(HOST_B, cookie=cookie)
        other = ws_connect(HOST_A, cookie=cookie)
    assert own[0] is True and own[2]["tenant"] == "tenant_b" and own[2]["user"] == "charlie"
    assert other[0] is False and other[1] == 4401


def test_alice_socket_pongs_through_the_channel_layer(committed_session, django_db_blocker):
    cookie = committed_session("tenant_a", "alice")
    with django_db_blocker.unblock():
        connected, _, reply = ws_connect(HOST_A, cookie=cookie)
    assert connected
    assert reply == {"type": "pong", "tenant": "tenant_a", "user": "alice", "echo": "hi"}


def test_anonymous_socket_is_closed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        connected, code, _ = ws_connect(HOST_A)
    assert connected is False and code == 4401


def test_unknown_host_gets_404_over_http(db, client):
    assert client.get("/admin/", HTTP_HOST="nobody.localhost").status_code == 404
    response = client.get("/api/v1/me/", HTTP_HOST="nobody.localhost")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_host_gets_a_closed_socket(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        connected, code, _ = ws_connect("nobody.localhost")
    assert connected is False and code == 4404


def test_public_host_socket_is_closed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        connected, code, _ = ws_connect("localhost")
    assert connected is False and code == 4404


def test_foreign_origin_cannot_open_a_staff_socket(committed_session, django_db_blocker):
    headers = [
        (b"host", HOST_A.encode()),
        (b"origin", b"http://evil.example"),
        (b"cookie", committed_session("tenant_a", "alice").encode()),
    ]

    async def run():  # type: ignore[no-untyped-def]
        communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    with django_db_blocker.unblock():
        assert async_to_sync(run)() is False
