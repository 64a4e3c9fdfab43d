"""Console pages for webhooks: endpoints (events as checkboxes, the signing secret shown to
those who manage webhooks), and the delivery log with a "redeliver" action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from chatbot import webhooks
from chatbot.models import Webhook, WebhookDelivery


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices, widget=forms.CheckboxSelectMultiple, required=True
    )
    url = forms.URLField(max_length=2048, assume_scheme="https")

    class Meta:
        model = Webhook
        fields = ["name", "url", "events", "is_active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhooks.validate_url(url)
        except forms.ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["url"]) from None
        return url


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ["created_at", "event", "status", "attempts", "response_code"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at"]
    verbose_name_plural = "latest deliveries"

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        latest = WebhookDelivery.objects.order_by("-created_at").values("pk")[:20]
        return super().get_queryset(request).filter(pk__in=latest)


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["name", "url", "event_list", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    readonly_fields = ["signing_secret"]
    inlines = [DeliveryInline]

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = ["name", "url", "events", "is_active"]
        return [*fields, "signing_secret"] if obj else fields

    @admin.display(description="Events")
    def event_list(self, hook: Webhook) -> str:
        return ", ".join(hook.events)

    @admin.display(description="Signing secret")
    def signing_secret(self, hook: Webhook) -> str:
        return format_html(
            "<code>{}</code><div class='help'>Verify <code>X-Parley-Signature</code> with it "
            "(docs/webhooks.md). Stored encrypted.</div>",
            hook.secret,
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "webhook", "event", "status", "attempts", "response_code"]
    list_filter = ["status", "event", "webhook"]
    list_select_related = ["webhook"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["redeliver"]
    fields = [
        "webhook", "event", "status", "attempts", "response_code", "error", "response_body",
        "payload", "created_at", "delivered_at",
    ]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Redeliver the selected events", permissions=["view"])
    def redeliver(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        count = webhooks.redeliver(list(queryset))
        self.message_user(request, f"{count} delivery(ies) queued again.", messages.SUCCESS)
