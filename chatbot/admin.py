"""Tenant console: bots (provider key write-only) and API keys (shown once, stored
hashed, revocable)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from chatbot import answering
from chatbot.models import ApiKey, AuditEntry, Bot
from chatbot.services import create_api_key, revoke_api_keys
from widget.embed import embed_html


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


class BotForm(forms.ModelForm):
    """The provider key is write-only: the field is always empty, a blank value keeps the
    stored key, and the key never reaches a page once saved."""

    api_key = forms.CharField(
        required=False,
        label="Provider API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave blank to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text=Bot._meta.get_field("base_url").help_text,
    )
    avatar_url = forms.URLField(required=False, assume_scheme="https")
    suggested_questions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line; shown to visitors as buttons.",
    )

    class Meta:
        model = Bot
        fields = [
            "name", "knowledge_bases", "greeting", "system_prompt", "provider", "model",
            "base_url", "api_key", "temperature", "max_output_tokens", "top_k",
            "relevance_threshold", "fallback_message", "memory_tokens",
            "answer_in_visitor_language", "offer_handoff", "handoff_after_failures",
            "allowed_origins", "title", "color", "avatar_url", "position", "suggested_questions",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.initial["api_key"] = ""
        self.initial["suggested_questions"] = "\n".join(self.instance.suggested_questions or [])
        if self.instance.api_key:
            self.fields[
                "api_key"
            ].help_text = "A key is stored (encrypted, never shown). Leave blank to keep it."

    def clean_api_key(self) -> str:
        if self.cleaned_data.get("clear_api_key"):
            return ""
        return self.cleaned_data.get("api_key", "").strip() or self.instance.api_key

    def clean_suggested_questions(self) -> list[str]:
        text = self.cleaned_data.get("suggested_questions") or ""
        return [line.strip()[:200] for line in text.splitlines() if line.strip()][:8]

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if data.get("clear_api_key"):
            data["api_key"] = ""
        return data


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    form = BotForm
    list_display = ["name", "provider_and_model", "knowledge", "public_id", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["name", "public_id"]
    filter_horizontal = ["knowledge_bases"]
    readonly_fields = ["public_id", "embed", "try_it", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "public_id", "knowledge_bases", "greeting"]}),
        ("Try it", {"fields": ["try_it"]}),
        (
            "Answering",
            {
                "fields": [
                    "system_prompt",
                    "provider",
                    "model",
                    "base_url",
                    "api_key",
                    "clear_api_key",
                    "temperature",
                    "max_output_tokens",
                    "top_k",
                    "relevance_threshold",
                    "fallback_message",
                    "memory_tokens",
                    "answer_in_visitor_language",
                    "offer_handoff",
                    "handoff_after_failures",
                ]
            },
        ),
        (
            "On your website",
            {
                "fields": [
                    "embed",
                    "allowed_origins",
                    "title",
                    "color",
                    "avatar_url",
                    "position",
                    "suggested_questions",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    class Media:
        css = {"all": ["parley/bot-admin.css"]}
        js = ["parley/bot-try.js"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("knowledge_bases")

    def get_fieldsets(self, request, obj=None):  # type: ignore[no-untyped-def]
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj else [f for f in fieldsets if f[0] != "Try it"]

    def get_urls(self):  # type: ignore[no-untyped-def]
        try_url = path(
            "<path:object_id>/try/",
            self.admin_site.admin_view(self.try_view),
            name="chatbot_bot_try",
        )
        return [try_url, *super().get_urls()]

    def try_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """POST {"question"} → the answer and the retrieved chunks with their scores."""
        bot = self.get_object(request, unquote(object_id))
        if bot is None or not self.has_view_permission(request, bot):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": "POST a question."}, status=405)
        try:
            question = str(json.loads(request.body or b"{}").get("question", "")).strip()
        except (ValueError, AttributeError):
            return JsonResponse({"error": 'Send JSON: {"question": "…"}.'}, status=400)
        if not question or len(question) > 4000:
            return JsonResponse({"error": "Ask a question (up to 4,000 characters)."}, status=400)
        return JsonResponse(answering.try_bot(bot, question))

    @admin.display(description="Ask a question")
    def try_it(self, bot: Bot) -> str:
        return format_html(
            '<div class="bot-try" data-url="{}">'
            '<label for="bot-try-question" class="visually-hidden">Question</label>'
            '<input type="text" id="bot-try-question" class="vTextField" '
            'placeholder="Ask what a visitor would ask">'
            '<button type="button" class="button">Ask</button>'
            '<div class="bot-try-result" aria-live="polite"></div></div>',
            reverse("admin:chatbot_bot_try", args=[bot.pk]),
        )

    @admin.display(description="Provider")
    def provider_and_model(self, bot: Bot) -> str:
        return f"{bot.get_provider_display()} · {bot.effective_model}"

    @admin.display(description="Knowledge")
    def knowledge(self, bot: Bot) -> str:
        return ", ".join(kb.name for kb in bot.knowledge_bases.all()) or "—"

    @admin.display(description="Embed on your site")
    def embed(self, bot: Bot) -> str:
        if not bot.pk:
            return "Save the bot to get its embed snippet."
        request = self._request
        return embed_html(bot, request.get_host(), request.scheme)

    def get_form(self, request, obj=None, **kwargs):  # type: ignore[no-untyped-def]
        self._request = request
        return super().get_form(request, obj, **kwargs)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by chatbot.audit and never edited."""

    list_display = ["created_at", "actor", "action", "object_type", "object_repr", "summary"]
    list_filter = ["action", "object_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor", "object_repr", "object_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "details"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="Changes")
    def summary(self, entry: AuditEntry) -> str:
        return ", ".join(sorted(entry.changes)) or "—"

    @admin.display(description="What changed")
    def details(self, entry: AuditEntry) -> str:
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (name, *(value if isinstance(value, list) and len(value) == 2 else ["", value]))
                for name, value in sorted(entry.changes.items())
            ),
        )
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


from chatbot import admin_limits, admin_staff, admin_webhooks  # noqa: E402,F401 - their pages
