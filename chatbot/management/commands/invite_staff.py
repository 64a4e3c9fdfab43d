"""Invite a staff member to a tenant's console: `invite_staff acme ann@acme.example --role agent`.
Prints the one-time link to choose a password."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from chatbot import roles
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Invite a staff member (owner or agent) to a tenant's console."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("schema")
        parser.add_argument("email")
        parser.add_argument("--role", choices=sorted(roles.ROLES), default="agent")

    def handle(self, schema: str, email: str, role: str, **options) -> None:  # type: ignore[no-untyped-def]
        tenant = Tenant.objects.filter(schema_name=schema).first()
        if tenant is None or schema == "public":
            raise CommandError(f"No tenant with the schema {schema!r}.")
        with schema_context(schema):
            try:
                invitation = roles.invite(email, role)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        domain = tenant.get_primary_domain()
        scheme = "https" if settings.SESSION_COOKIE_SECURE else "http"
        host = domain.domain if domain else f"{schema}.{settings.PARLEY_BASE_DOMAIN}"
        state = "invited" if invitation.created else "role set for existing user"
        self.stdout.write(f"{email}: {state} ({role})")
        self.stdout.write(f"{scheme}://{host}{invitation.link}")
