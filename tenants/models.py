"""Tenants (companies) and the host names that reach them. Public schema only."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)
    # Quotas, set by the platform (0: unlimited). Usage is counted per calendar month (UTC)
    # from the tenant's own rows: see chatbot/limits.py.
    max_messages_per_month = models.PositiveIntegerField(
        default=0, help_text="Visitor messages per calendar month (0: unlimited)."
    )
    max_llm_tokens_per_month = models.PositiveBigIntegerField(
        default=0, help_text="LLM tokens in + out per calendar month (0: unlimited)."
    )
    max_documents = models.PositiveIntegerField(
        default=0, help_text="Web pages and files in the knowledge bases (0: unlimited)."
    )
    api_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Per API key; empty: the platform default."
    )
    visitor_messages_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Per visitor; empty: the platform default."
    )

    auto_create_schema = True
    auto_drop_schema = False  # dropping a company's data is an explicit act, never a side effect

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def primary_host(self) -> str | None:
        domain = self.domains.filter(is_primary=True).first()
        return domain.domain if domain else None


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain
