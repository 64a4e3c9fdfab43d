"""Conversations between visitors and bots (or staff), and their messages.

Both are keyed by random UUIDs: visitors hold conversation ids to resume a chat and message
ids to rate an answer, so neither may be guessable.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models


class Conversation(models.Model):
    class Channel(models.TextChoices):
        WIDGET = "widget", "Widget"
        PAGE = "page", "Chat page"
        API = "api", "API"
        CONSOLE = "console", "Console"

    class Status(models.TextChoices):
        BOT = "bot", "With the bot"
        WAITING = "waiting", "Waiting for a person"
        AGENT = "agent", "With a person"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    bot = models.ForeignKey("chatbot.Bot", on_delete=models.CASCADE, related_name="conversations")
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel, default=Channel.API)
    status = models.CharField(max_length=16, choices=Status, default=Status.BOT)
    title = models.CharField(max_length=200, blank=True, help_text="The first question.")
    # Handoff: the agent who took the conversation, when a person was asked for, and the
    # email a visitor left when nobody could answer.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handoff_requested_at = models.DateTimeField(null=True, blank=True)
    lead_email = models.EmailField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Kept up to date by conversations.services, so that the inbox filters and sorts on
    # plain columns instead of aggregating every message.
    message_count = models.PositiveIntegerField(default=0)
    unanswered_count = models.PositiveIntegerField(default=0)
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["bot", "-created_at"])]
        permissions = [
            ("view_analytics", "Can view analytics"),
            ("view_gaps", "Can view knowledge gaps and answer them"),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "Visitor"
        ASSISTANT = "assistant", "Bot"
        AGENT = "agent", "Agent"

    class Rating(models.TextChoices):
        NONE = "", "—"
        UP = "up", "👍"
        DOWN = "down", "👎"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role)
    content = models.TextField(blank=True)
    # Agent messages: who wrote them.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Assistant messages: the sources cited, as shown to the visitor ([1] is sources[0]).
    sources = models.JSONField(default=list, blank=True)
    answered = models.BooleanField(null=True, blank=True)
    # The standalone search query, when a follow-up was rewritten before retrieval.
    query = models.TextField(blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=200, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    error = models.TextField(blank=True)
    rating = models.CharField(max_length=4, choices=Rating, default=Rating.NONE, blank=True)
    feedback_comment = models.TextField(blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The inbox's text search: words in any language (no stemming), found by prefix.
    search_vector = models.GeneratedField(
        expression=SearchVector("content", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            GinIndex(fields=["search_vector"], name="message_search_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:60]}"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SupportHours(models.Model):
    """When people answer handed-off conversations (one row per tenant). Outside these hours,
    or with no agent online, visitors are told so and may leave their email address."""

    always_open = models.BooleanField(
        default=True, help_text="Ignore the hours below: agents may answer at any time."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    # {"mon": "09:00-17:00", ...}; a missing or empty day is closed.
    hours = models.JSONField(default=dict, blank=True)
    offline_message = models.TextField(
        default="Our team is not available right now. Leave your email address and we will "
        "get back to you."
    )

    class Meta:
        verbose_name = verbose_name_plural = "support hours"

    def __str__(self) -> str:
        return "Support hours"

    @classmethod
    def current(cls) -> SupportHours:
        return cls.objects.first() or cls()
