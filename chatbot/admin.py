"""Tenant console: API keys (shown once, stored hashed, revocable)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from chatbot.models import ApiKey
from chatbot.services import create_api_key, revoke_api_keys


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "masked", "created_at", "created_by", "last_used_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["masked", "created_at", "created_by", "last_used_at", "revoked_at"]
    fields = ["name", "masked", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def masked(self, obj: ApiKey) -> str:
        return f"prly_{obj.prefix}_…" if obj.prefix else "—"

    @admin.display(description="State")
    def state(self, obj: ApiKey) -> str:
        return "active" if obj.is_active else "revoked"

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["name"] if obj is None else self.fields

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = create_api_key(form.cleaned_data["name"], created_by=request.user.get_username())
        obj.pk = key.pk
        obj.__dict__.update(key.__dict__)
        messages.warning(
            request,
            format_html(
                "Copy the new key now: it will not be shown again.<br><code>{}</code>", raw
            ),
        )

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # keys are revoked, not deleted, so their use stays attributable

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        count = revoke_api_keys(queryset)
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
