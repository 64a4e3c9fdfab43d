"""Tenant-schema models of the chatbot app. API keys for now; bots join in a later issue."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import models
from django.utils import timezone

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
