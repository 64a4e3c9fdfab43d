"""Write paths of the chatbot app, shared by the admin, the API and management commands."""

from __future__ import annotations

from chatbot.models import ApiKey


def create_api_key(name: str, created_by: str = "") -> tuple[ApiKey, str]:
    """Create a key in the current tenant schema; returns the row and the only copy of the
    raw key."""
    name = name.strip()
    if not name:
        raise ValueError("An API key needs a name.")
    return ApiKey.generate(name, created_by=created_by)


def revoke_api_keys(keys) -> int:  # type: ignore[no-untyped-def]
    count = 0
    for key in keys:
        if key.is_active:
            key.revoke()
            count += 1
    return count
