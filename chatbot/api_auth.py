"""API authentication: `Authorization: Bearer <key>`, looked up in the request's tenant
schema only (TenantMainMiddleware has already set it), so another tenant's key is simply
unknown here."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from chatbot import audit
from chatbot.models import ApiKey


@dataclass
class ApiClient:
    """The principal behind an API request: a tenant's key, not a person."""

    key: ApiKey
    schema_name: str
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"apikey:{self.key.pk}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            raise exceptions.AuthenticationFailed("Use the header `Authorization: Bearer <key>`.")
        if getattr(connection, "tenant", None) is None or connection.schema_name == "public":
            raise exceptions.AuthenticationFailed("API keys are valid on a tenant's host only.")
        key = ApiKey.authenticate(raw.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # The key is the actor of the request's audited changes (the middleware's context
        # is the request's: reset when the request ends).
        audit.set_actor(audit.Actor(f"API key {key.name} ({key.prefix}…)"))
        return ApiClient(key=key, schema_name=connection.schema_name), key

    def authenticate_header(self, request):  # type: ignore[no-untyped-def]
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "chatbot.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key."}


class ApiKeyThrottle(throttling.BaseThrottle):
    """Requests per minute per API key (the tenant's limit, else PARLEY_API_RATE_PER_MINUTE),
    counted in Redis so that every web process shares it; 429 with Retry-After beyond."""

    def allow_request(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        from chatbot import limits

        client = request.user
        if not isinstance(client, ApiClient):
            return True
        allowed, self._wait = limits.hit_api_key(connection.tenant, client.key.pk)
        return allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_wait", 1) or 1)
