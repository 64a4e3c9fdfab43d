"""Tenant resolution and authentication for WebSocket connections.

HTTP requests get their tenant from django-tenants' middleware; WebSockets need our own.
The schema lives on the DB connection of whatever thread runs the query, and asgiref runs
every `database_sync_to_async` call on one shared thread, so each sync function below sets
its own schema (see ARCHITECTURE.md, "Channels x django-tenants").
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.module_loading import import_string
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from tenants.models import Domain, Tenant

CLOSE_UNKNOWN_TENANT = 4404


def header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def host_without_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


@database_sync_to_async
def tenant_for_host(host: str) -> Tenant | None:
    with schema_context(get_public_schema_name()):
        domain = (
            Domain.objects.select_related("tenant")
            .filter(domain=host, tenant__is_active=True)
            .exclude(tenant__schema_name=get_public_schema_name())
            .first()
        )
    return domain.tenant if domain else None


class TenantWebsocketMiddleware(BaseMiddleware):
    """Puts `scope["tenant"]` from the Host header; closes the socket for unknown hosts."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        tenant = await tenant_for_host(host_without_port(header(scope, b"host")))
        if tenant is None:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": CLOSE_UNKNOWN_TENANT})
            return None
        return await self.inner(dict(scope, tenant=tenant), receive, send)


@database_sync_to_async
def user_for_session(tenant: Tenant, session_key: str | None):  # type: ignore[no-untyped-def]
    """The user of a session, read from the tenant's own schema (Channels' AuthMiddleware
    would read the public schema's tables)."""
    if not session_key:
        return AnonymousUser()
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    with tenant_context(tenant):
        request = SimpleNamespace(session=engine(session_key))
        user = auth.get_user(request)  # type: ignore[arg-type]
        if user.is_authenticated:
            user.groups.all  # noqa: B018 - nothing lazy may hit the DB outside the schema
    return user


class TenantAuthMiddleware(BaseMiddleware):
    """Puts `scope["user"]`, authenticated against the tenant's sessions and users."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        cookies = parse_cookie(header(scope, b"cookie"))
        user = await user_for_session(scope["tenant"], cookies.get(settings.SESSION_COOKIE_NAME))
        return await self.inner(dict(scope, user=user), receive, send)


def tenant_websocket_stack(inner):  # type: ignore[no-untyped-def]
    return TenantWebsocketMiddleware(TenantAuthMiddleware(inner))
