"""Tenant-schema models of the chatbot app: API keys and bots."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from chatbot.crypto import EncryptedTextField

KEY_PREFIX = "prly"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key and minute


def hash_key(raw: str) -> str:
    # Keys are 256-bit random tokens: a plain SHA-256 is as safe as a slow password hash for
    # them, costs nothing per request, and (unlike an HMAC with SECRET_KEY) survives the
    # rotation of SECRET_KEY.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A tenant's API key. Only a hash and a short prefix are stored: the key itself is
    shown once, when it is created."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def generate(cls, name: str, created_by: str = "") -> tuple[ApiKey, str]:
        prefix = secrets.token_hex(4)
        raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            name=name, prefix=prefix, key_hash=hash_key(raw), created_by=created_by
        )
        return key, raw

    @classmethod
    def authenticate(cls, raw: str) -> ApiKey | None:
        parts = raw.split("_")
        if len(parts) < 3 or parts[0] != KEY_PREFIX:
            return None
        key = cls.objects.active().filter(prefix=parts[1]).first()
        if key is None or not hmac.compare_digest(key.key_hash, hash_key(raw)):
            return None
        key.touch()
        return key

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > LAST_USED_RESOLUTION:
            self.last_used_at = now
            self.save(update_fields=["last_used_at"])

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


def new_public_id() -> str:
    # 128 random bits, URL-safe: the id appears in embed snippets and visitor URLs, so it
    # must not be guessable or enumerable.
    return secrets.token_urlsafe(16)


DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly, concise support assistant for this company's website. Answer the "
    "visitor's question from the knowledge provided."
)
DEFAULT_FALLBACK = "Sorry, I don't know the answer to that. Would you like to talk to a person?"
DEFAULT_MODELS = {
    "openai": "gpt-4.1-mini",
    "anthropic": "claude-haiku-4-5",
    "openai_compatible": "llama3.1",
    "extractive": "extractive",
}


class Bot(models.Model):
    """A chatbot: which knowledge it answers from, how (provider and prompt), and how it
    looks on the visitor's side."""

    class Provider(models.TextChoices):
        EXTRACTIVE = "extractive", "Extractive (offline, no LLM)"
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server (Ollama, vLLM…)"

    class Position(models.TextChoices):
        RIGHT = "right", "Bottom right"
        LEFT = "left", "Bottom left"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=200)
    knowledge_bases = models.ManyToManyField(
        "knowledge.KnowledgeBase", related_name="bots", blank=True
    )
    # Answering
    system_prompt = models.TextField(default=DEFAULT_SYSTEM_PROMPT, blank=True)
    greeting = models.CharField(max_length=500, default="Hi! How can I help you today?")
    provider = models.CharField(max_length=32, choices=Provider, default=Provider.EXTRACTIVE)
    model = models.CharField(
        max_length=200, blank=True, help_text="Empty: the provider's default model."
    )
    base_url = models.URLField(
        blank=True, help_text="OpenAI-compatible servers: e.g. http://localhost:11434/v1"
    )
    api_key = EncryptedTextField(
        blank=True, help_text="The provider's API key. Stored encrypted, never shown again."
    )
    temperature = models.FloatField(
        default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    max_output_tokens = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(16), MaxValueValidator(16000)]
    )
    top_k = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Passages given to the model.",
    )
    relevance_threshold = models.FloatField(
        # Calibrated on the Python docs with MiniLM (docs/retrieval.md): 0 answerable
        # questions of 118 refused, 29 unanswerable of 34 refused.
        default=0.40,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Passages scoring below this (0 to 1) are ignored; with none left the bot "
        "says it does not know.",
    )
    fallback_message = models.TextField(default=DEFAULT_FALLBACK)
    memory_tokens = models.PositiveIntegerField(
        default=1500,
        validators=[MaxValueValidator(32000)],
        help_text="Token budget of the conversation history sent with each question.",
    )
    answer_in_visitor_language = models.BooleanField(default=True)
    offer_handoff = models.BooleanField(
        default=True, help_text="Offer a person when the bot cannot answer."
    )
    handoff_after_failures = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(20)],
        help_text="Hand the conversation to a person after this many unanswered questions in "
        "a row (0: never by itself).",
    )
    # Visitor side
    allowed_origins = models.TextField(
        blank=True,
        help_text="Sites that may embed this bot, one origin per line "
        "(https://www.example.com). The tenant's own host is always allowed.",
    )
    title = models.CharField(max_length=100, blank=True, help_text="Chat window title.")
    color = models.CharField(
        max_length=7,
        default="#4f46e5",
        # a colour goes into CSS: nothing but #rrggbb
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour like #4f46e5.")],
    )
    avatar_url = models.URLField(blank=True)
    position = models.CharField(max_length=8, choices=Position, default=Position.RIGHT)
    suggested_questions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("view_limits", "Can view usage and limits")]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider]

    @property
    def display_title(self) -> str:
        return self.title or self.name

    @property
    def origins(self) -> list[str]:
        return [
            line.strip().rstrip("/") for line in self.allowed_origins.splitlines() if line.strip()
        ]

    def clean(self) -> None:
        errors = {}
        if self.provider in {self.Provider.OPENAI, self.Provider.ANTHROPIC} and not self.api_key:
            errors["api_key"] = f"{self.get_provider_display()} needs an API key."
        if self.provider == self.Provider.OPENAI_COMPATIBLE and not self.base_url:
            errors["base_url"] = "An OpenAI-compatible server needs its base URL."
        if not isinstance(self.suggested_questions, list) or not all(
            isinstance(q, str) for q in self.suggested_questions
        ):
            errors["suggested_questions"] = "A list of questions."
        for origin in self.origins:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                errors["allowed_origins"] = f"Not an origin: {origin!r} (scheme://host[:port])."
                break
        if errors:
            raise ValidationError(errors)


class AuditEntry(models.Model):
    """Who changed which bot, knowledge base, source, API key or webhook, when, and what
    changed (secrets recorded as changed, never with their values). Written by
    chatbot.audit, read-only everywhere."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=200, help_text="A staff user or an API key.")
    user_id = models.IntegerField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_repr}"


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Webhook(models.Model):
    """An endpoint of the tenant's that hears about events, signed with its own secret."""

    class Event(models.TextChoices):
        CONVERSATION_STARTED = "conversation.started"
        MESSAGE_CREATED = "message.created"
        HANDOFF_REQUESTED = "handoff.requested"
        FEEDBACK_RECEIVED = "feedback.received"
        SOURCE_SYNCED = "source.synced"
        SOURCE_FAILED = "source.failed"

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2048, help_text="HTTPS endpoint receiving POSTed JSON.")
    events = models.JSONField(default=list, help_text="The events sent to this endpoint.")
    secret = EncryptedTextField(default=new_webhook_secret, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        unknown = set(self.events or []) - set(self.Event.values)
        if not isinstance(self.events, list) or unknown:
            raise ValidationError({"events": f"Unknown events: {sorted(unknown)}."})


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook}"
