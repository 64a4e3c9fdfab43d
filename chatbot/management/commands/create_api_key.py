"""`manage.py create_api_key <schema> <name>`: prints only the new key on stdout."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from chatbot.services import create_api_key
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key in a tenant and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema")
        parser.add_argument("name")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        schema = options["schema"]
        if schema == "public" or not Tenant.objects.filter(schema_name=schema).exists():
            raise CommandError(f"No tenant with schema {schema!r}.")
        with schema_context(schema):
            try:
                _, raw = create_api_key(options["name"], created_by="manage.py")
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(raw)
