"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

`PARLEY_ENCRYPTION_KEY` holds one or more comma-separated keys: the first encrypts, all
decrypt, so a key can be rotated by putting the new one first and re-saving.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet(tuple(settings.PARLEY_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.PARLEY_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "A stored secret cannot be decrypted: PARLEY_ENCRYPTION_KEY lacks the key it was "
            "encrypted with."
        ) from None


class EncryptedTextField(models.TextField):
    """A text column stored encrypted. Empty values stay empty (nothing to hide)."""

    def from_db_value(self, value, expression, connection):  # type: ignore[no-untyped-def]
        if not value:
            return value
        return decrypt(value)

    def get_prep_value(self, value):  # type: ignore[no-untyped-def]
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
