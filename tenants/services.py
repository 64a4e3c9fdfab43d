"""Creating tenants and their first staff user: one idempotent write path for the
management command, the demo bootstrap and the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Domain, Tenant

SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
RESERVED_SCHEMAS = {"public", "information_schema", "pg_catalog", "pg_toast"}


@dataclass
class TenantSite:
    tenant: Tenant
    domain: Domain
    created: bool


def validate_schema_name(schema: str) -> None:
    if not SCHEMA_RE.match(schema) or schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise ValidationError(
            f"Invalid schema name {schema!r}: use lower-case letters, digits and underscores, "
            "starting with a letter (at most 63 characters), not a reserved name."
        )


def validate_host(host: str) -> None:
    if not HOST_RE.match(host):
        raise ValidationError(f"Invalid host name {host!r}.")


def default_host(schema: str) -> str:
    return f"{schema.replace('_', '-')}.{settings.PARLEY_BASE_DOMAIN}"


def ensure_public_tenant() -> Tenant:
    """The public schema's tenant row, reached at the bare base domain (platform admin)."""
    with schema_context(get_public_schema_name()):
        tenant, _ = Tenant.objects.get_or_create(
            schema_name=get_public_schema_name(), defaults={"name": "Parley platform"}
        )
        for host in {settings.PARLEY_BASE_DOMAIN, "localhost", "127.0.0.1"}:
            Domain.objects.get_or_create(
                domain=host, defaults={"tenant": tenant, "is_primary": host == "localhost"}
            )
    return tenant


def create_tenant_site(
    schema: str,
    host: str | None = None,
    *,
    name: str | None = None,
    admin_email: str | None = None,
    admin_password: str | None = None,
) -> TenantSite:
    """Create (or bring up to date) a tenant, its primary host and its first staff user.

    Running it twice with the same arguments leaves the same state as running it once.
    The staff user logs in with the e-mail address as user name; giving a password again
    resets it to that password.
    """
    validate_schema_name(schema)
    host = (host or default_host(schema)).lower()
    validate_host(host)
    with schema_context(get_public_schema_name()):
        existing = Domain.objects.filter(domain=host).select_related("tenant").first()
        if existing and existing.tenant.schema_name != schema:
            raise ValidationError(f"Host {host!r} already belongs to tenant {existing.tenant}.")
        tenant = Tenant.objects.filter(schema_name=schema).first()
        created = tenant is None
        if tenant is None:
            # Creating the schema runs every tenant migration; it cannot be rolled back with
            # the row, so the schema comes first and the domain after.
            tenant = Tenant(schema_name=schema, name=name or schema.replace("_", " ").title())
            tenant.save()
        elif name and tenant.name != name:
            tenant.name = name
            tenant.save(update_fields=["name"])
        domain, _ = Domain.objects.get_or_create(
            domain=host, defaults={"tenant": tenant, "is_primary": True}
        )
    if admin_email:
        ensure_staff_user(tenant, admin_email, admin_password)
    return TenantSite(tenant=tenant, domain=domain, created=created)


def ensure_staff_user(tenant: Tenant, email: str, password: str | None) -> None:
    """A superuser of the tenant's own admin (users live in each tenant's schema)."""
    User = get_user_model()
    with schema_context(tenant.schema_name), transaction.atomic():
        user, created = User.objects.get_or_create(
            username=email, defaults={"email": email, "is_staff": True, "is_superuser": True}
        )
        fields = []
        if password:
            user.set_password(password)
            fields.append("password")
        elif created:
            user.set_unusable_password()
            fields.append("password")
        if not (user.is_staff and user.is_superuser and user.is_active):
            user.is_staff = user.is_superuser = user.is_active = True
            fields += ["is_staff", "is_superuser", "is_active"]
        if fields:
            user.save(update_fields=fields)
