"""Roles: owners run everything, agents see the inbox and handoffs only; staff invitations."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client

from chatbot import roles
from tests.conftest import HOST_A, logged_in_client


@pytest.fixture
def agent_client(tenant_a):
    connection.set_tenant(tenant_a)
    roles.invite("ann@example.com", "agent")
    return logged_in_client(tenant_a, HOST_A, "ann@example.com")


@pytest.fixture
def owner_client(tenant_a):
    connection.set_tenant(tenant_a)
    roles.invite("olga@example.com", "owner")
    return logged_in_client(tenant_a, HOST_A, "olga@example.com")


def test_each_tenant_schema_gets_both_roles_when_migrated(in_tenant_a):
    assert set(Group.objects.values_list("name", flat=True)) >= {"Owner", "Agent"}
    agent = Group.objects.get(name="Agent")
    codes = {p.codename for p in agent.permissions.all()}
    assert "view_conversation" in codes
    assert not codes & {"view_apikey", "view_bot", "change_bot", "view_analytics"}


def test_an_agent_sees_the_inbox_but_no_keys_bots_or_settings(agent_client):
    assert agent_client.get("/admin/conversations/conversation/").status_code == 200
    for forbidden in (
        "/admin/chatbot/apikey/",
        "/admin/chatbot/bot/",
        "/admin/chatbot/bot/add/",
        "/admin/knowledge/knowledgebase/",
        "/admin/chatbot/auditentry/",
        "/admin/auth/user/",
        "/admin/invite/",
    ):
        assert agent_client.get(forbidden).status_code == 403, forbidden
    index = agent_client.get("/admin/").content.decode()
    assert "Conversations" in index
    for hidden in ("API keys", "Bots", "Knowledge bases", "Invite staff", "Audit log"):
        assert hidden not in index, hidden


def test_an_owner_sees_bots_keys_and_staff(owner_client):
    for allowed in (
        "/admin/chatbot/apikey/",
        "/admin/chatbot/bot/",
        "/admin/knowledge/knowledgebase/",
        "/admin/conversations/conversation/",
        "/admin/auth/user/",
        "/admin/invite/",
    ):
        assert owner_client.get(allowed).status_code == 200, allowed
    index = owner_client.get("/admin/").content.decode()
    for section in ("Bots", "Knowledge", "Conversations", "Settings", "Invite staff"):
        assert section in index


def test_an_owner_invites_an_agent_who_chooses_a_password(owner_client, tenant_a):
    response = owner_client.post("/admin/invite/", {"email": "Pat@Example.com", "role": "agent"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["pat@example.com"]
    link = re.search(r"http://a\.localhost(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    connection.set_tenant(tenant_a)
    pat = get_user_model().objects.get(username="pat@example.com")
    assert pat.is_staff and not pat.has_usable_password() and roles.role_of(pat) == "agent"
    visitor = Client(HTTP_HOST=HOST_A)
    form = visitor.get(link, follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    password = "a long and new passphrase 42"
    done = visitor.post(
        form.redirect_chain[-1][0], {"new_password1": password, "new_password2": password}
    )
    assert done.status_code == 302
    login = visitor.post(
        "/admin/login/?next=/admin/",
        {"username": "pat@example.com", "password": password},
        follow=True,
    )
    assert login.status_code == 200 and "Conversations" in login.content.decode()
    assert visitor.get(link).status_code in {200, 302}
    assert "new_password1" not in visitor.get(link, follow=True).content.decode()  # used once


def test_invalid_invitations_are_refused(owner_client):
    response = owner_client.post("/admin/invite/", {"email": "not-an-email", "role": "agent"})
    assert response.status_code == 200 and "valid email" in response.content.decode()
    assert not mail.outbox


def test_the_invite_command_prints_a_link(tenant_a):
    out = StringIO()
    call_command("invite_staff", "tenant_a", "cli@example.com", "--role", "owner", stdout=out)
    assert "cli@example.com: invited (owner)" in out.getvalue()
    assert "a.localhost/accounts/reset/" in out.getvalue()
    connection.set_tenant(tenant_a)
    assert roles.role_of(get_user_model().objects.get(username="cli@example.com")) == "owner"


def test_charlie_invites_into_his_own_tenant_only(charlie_client, tenant_a):
    charlie_client.post("/admin/invite/", {"email": "mole@example.com", "role": "owner"})
    connection.set_tenant(tenant_a)
    assert not get_user_model().objects.filter(username="mole@example.com").exists()
