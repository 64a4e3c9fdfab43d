"""The LLM settings: a wrong value stops start-up naming the variable."""

from __future__ import annotations

import pytest

from tests.chatbot.test_settings import start_django


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARLEY_LLM_TIMEOUT", "soon"),
        ("PARLEY_LLM_TIMEOUT", "0"),
        ("PARLEY_LLM_READ_TIMEOUT", "-5"),
        ("PARLEY_LLM_RETRIES", "0"),
        ("PARLEY_LLM_RETRY_BASE_DELAY_MS", "-1"),
    ],
)
def test_a_wrong_llm_setting_stops_start_up_naming_the_variable(variable, value):
    result = start_django(**{variable: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{variable}:" in result.stderr
