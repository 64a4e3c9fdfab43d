"""The conversation inbox: every conversation of the tenant's bots, filterable and
searchable, and a transcript page showing each answer's sources, latency, tokens and
feedback. Conversations are read in the console, never edited as raw rows."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import admin
from django.contrib.postgres.search import SearchQuery
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conversations import services
from conversations.models import Conversation, Message


def prefix_query(text: str) -> str:
    """Every word of the search, each matched as a word prefix ("refun" finds "refunds"),
    as a tsquery of plain lexemes (nothing from the input reaches it unescaped)."""
    words = re.findall(r"\w+", text.lower())[:8]
    return " & ".join(f"'{word}':*" for word in words)


class AnsweredFilter(admin.SimpleListFilter):
    title = "answers"
    parameter_name = "answered"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("no", "With unanswered questions"), ("yes", "All answered")]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "no":
            return queryset.filter(unanswered_count__gt=0)
        if self.value() == "yes":
            return queryset.filter(unanswered_count=0, message_count__gt=0)
        return queryset


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("down", "👎 Thumbs down"), ("up", "👍 Thumbs up"), ("none", "No feedback")]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "down":
            return queryset.filter(thumbs_down__gt=0)
        if self.value() == "up":
            return queryset.filter(thumbs_up__gt=0)
        if self.value() == "none":
            return queryset.filter(thumbs_up=0, thumbs_down=0)
        return queryset


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "started",
        "question",
        "bot",
        "channel",
        "status",
        "message_count",
        "answers",
        "feedback",
        "last_message_at",
    ]
    list_display_links = ["started", "question"]
    list_filter = [
        "bot",
        ("created_at", admin.DateFieldListFilter),
        AnsweredFilter,
        FeedbackFilter,
        "channel",
        "status",
    ]
    search_fields = ["title"]
    search_help_text = "Search the visitors' and the bot's messages."
    date_hierarchy = "created_at"
    list_select_related = ["bot"]
    list_per_page = 50
    show_full_result_count = False  # counting 100k rows on every page view buys nothing
    fields = ["summary", "transcript"]
    readonly_fields = ["summary", "transcript"]
    actions = ["delete_selected"]

    class Media:
        css = {"all": ["parley/inbox.css"]}

    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        query = prefix_query(search_term)
        if not query:
            return queryset, False
        matching = Message.objects.filter(
            conversation=OuterRef("pk"),
            search_vector=SearchQuery(query, config="simple", search_type="raw"),
        )
        return queryset.filter(Exists(matching)), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the transcript is read-only; replies come with the handoff inbox

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).select_related("bot")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        services.delete_conversations(list(queryset))

    @admin.display(description="Started", ordering="created_at")
    def started(self, conversation: Conversation) -> str:
        return conversation.created_at.strftime("%Y-%m-%d %H:%M")

    @admin.display(description="First question", ordering="title")
    def question(self, conversation: Conversation) -> str:
        return conversation.title[:90] or "—"

    @admin.display(description="Answered")
    def answers(self, conversation: Conversation) -> SafeString:
        unanswered = conversation.unanswered_count
        if not conversation.message_count:
            return format_html("{}", "—")
        if unanswered:
            return format_html('<span class="inbox-bad">{} unanswered</span>', unanswered)
        return format_html('<span class="inbox-good">{}</span>', "all")

    @admin.display(description="Feedback")
    def feedback(self, conversation: Conversation) -> SafeString:
        return format_html(
            '<span title="thumbs up">👍 {}</span> <span title="thumbs down">👎 {}</span>',
            conversation.thumbs_up,
            conversation.thumbs_down,
        )

    @admin.display(description="Conversation")
    def summary(self, conversation: Conversation) -> SafeString:
        return format_html(
            "{} · {} · {} · visitor <code>{}</code> · started {}",
            conversation.bot.name,
            conversation.get_channel_display(),
            conversation.get_status_display(),
            conversation.visitor_id or "—",
            conversation.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )

    @admin.display(description="Transcript")
    def transcript(self, conversation: Conversation) -> SafeString:
        messages = list(conversation.messages.order_by("created_at"))
        return SafeString(render_to_string("conversations/transcript.html", {"messages": messages}))
