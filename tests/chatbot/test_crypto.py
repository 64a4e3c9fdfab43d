"""Secrets at rest are encrypted with PARLEY_ENCRYPTION_KEY, with key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from chatbot import crypto


def test_encryption_round_trips_and_hides_the_plaintext(settings):
    token = crypto.encrypt("sk-live-secret")
    assert "sk-live-secret" not in token
    assert crypto.decrypt(token) == "sk-live-secret"


def test_a_rotated_key_still_decrypts_old_secrets(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PARLEY_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("sk-old")
    settings.PARLEY_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == "sk-old"
    assert Fernet(new.encode()).decrypt(crypto.encrypt("sk-new").encode()) == b"sk-new"


def test_a_missing_key_is_a_clear_error(settings):
    token = crypto.encrypt("sk-x")
    settings.PARLEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError, match="PARLEY_ENCRYPTION_KEY"):
        crypto.decrypt(token)
