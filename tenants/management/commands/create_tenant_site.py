"""`manage.py create_tenant_site <schema> [--domain HOST] [--name N] [--admin-email E
--admin-password P]`: idempotent, non-interactive."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import create_tenant_site, ensure_public_tenant


class Command(BaseCommand):
    help = "Create or update a tenant, its host name and (optionally) its first staff user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema", help="PostgreSQL schema name, e.g. acme")
        parser.add_argument("--domain", help="host name (default <schema>.PARLEY_BASE_DOMAIN)")
        parser.add_argument("--name", help="display name of the company")
        parser.add_argument("--admin-email", help="staff user to create; logs in with this")
        parser.add_argument(
            "--admin-password",
            help="the staff user's password (or set PARLEY_ADMIN_PASSWORD to keep it off argv)",
        )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        password = options["admin_password"] or os.environ.get("PARLEY_ADMIN_PASSWORD")
        if password and not options["admin_email"]:
            raise CommandError("--admin-password needs --admin-email")
        try:
            ensure_public_tenant()
            site = create_tenant_site(
                options["schema"],
                options["domain"],
                name=options["name"],
                admin_email=options["admin_email"],
                admin_password=password,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        verb = "Created" if site.created else "Updated"
        self.stdout.write(f"{verb} tenant {site.tenant.schema_name} at {site.domain.domain}")
