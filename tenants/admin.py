"""Platform admin (public host only): tenants and their host names."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from chatbot.admin_site import platform_admin
from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 1


@admin.register(Tenant, site=platform_admin)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "schema_name", "hosts", "is_active", "created_at"]
    search_fields = ["name", "schema_name", "domains__domain"]
    list_filter = ["is_active"]
    inlines = [DomainInline]
    fieldsets = [
        (None, {"fields": ["name", "schema_name", "is_active", "created_at"]}),
        (
            "Limits",
            {
                "fields": [
                    "max_messages_per_month",
                    "max_llm_tokens_per_month",
                    "max_documents",
                    "api_requests_per_minute",
                    "visitor_messages_per_minute",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["schema_name", "created_at"] if obj else ["created_at"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="Hosts")
    def hosts(self, obj: Tenant) -> str:
        return format_html("{}", ", ".join(domain.domain for domain in obj.domains.all()))


@admin.register(Domain, site=platform_admin)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__name"]
    list_select_related = ["tenant"]
