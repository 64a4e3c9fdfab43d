"""A wrong configuration value stops start-up with an error naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def start_django(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatbot.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/parley"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://localhost:6379"),
        ("CHROMA_URL", "chroma.local:8000"),
        ("DEBUG", "maybe"),
        ("PARLEY_ENCRYPTION_KEY", "too-short"),
        ("SECRET_KEY", "short"),
        ("PARLEY_BASE_DOMAIN", "https://example.com/"),
        ("PARLEY_HEALTH_TIMEOUT_MS", "soon"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(variable, value):
    result = start_django(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{variable}:" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x" * 50 + "\n")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); "
            "from django.conf import settings; print(settings.SECRET_KEY)",
        ],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatbot.settings",
            "SECRET_KEY_FILE": str(secret),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "x" * 50


def test_an_unreadable_secret_file_is_named():
    result = start_django(SECRET_KEY_FILE="/nonexistent/secret")
    assert result.returncode != 0
    assert "SECRET_KEY_FILE:" in result.stderr


def test_every_variable_is_documented_in_env_example():
    example = (BASE_DIR / ".env.example").read_text()
    settings_source = (BASE_DIR / "chatbot" / "settings.py").read_text()
    import re

    used = set(re.findall(r'_(?:read|bool|int|url)\("([A-Z_]+)"', settings_source))
    assert used, "the settings read no variables?"
    missing = sorted(name for name in used if name not in example)
    assert not missing, f"undocumented in .env.example: {missing}"
