"""Shared option handling for the knowledge commands: which tenants, which knowledge bases."""

from __future__ import annotations

from collections.abc import Iterator

from django.core.management.base import CommandError
from django_tenants.utils import get_public_schema_name, schema_context

from knowledge.models import KnowledgeBase
from tenants.models import Tenant


def knowledge_bases(schema: str | None, kb_id: int | None) -> Iterator[tuple[str, KnowledgeBase]]:
    """Yield (schema, knowledge base) inside each tenant's schema."""
    tenants = Tenant.objects.exclude(schema_name=get_public_schema_name())
    if schema:
        tenants = tenants.filter(schema_name=schema)
        if not tenants.exists():
            raise CommandError(f"No tenant with schema {schema!r}.")
    if kb_id is not None and not schema:
        raise CommandError("--kb needs --schema (ids are per tenant).")
    for tenant in tenants.order_by("schema_name"):
        with schema_context(tenant.schema_name):
            kbs = KnowledgeBase.objects.order_by("pk")
            if kb_id is not None:
                kbs = kbs.filter(pk=kb_id)
                if not kbs.exists():
                    raise CommandError(f"No knowledge base {kb_id} in {tenant.schema_name}.")
            for kb in kbs:
                yield tenant.schema_name, kb
