"""Write paths of the chatbot app, shared by the admin, the API and management commands."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chatbot.models import ApiKey, Bot


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


# --- Bots -------------------------------------------------------------------------------
BOT_FIELDS = frozenset(
    f.name for f in Bot._meta.get_fields() if f.concrete and not f.auto_created
) - {"public_id", "created_at", "updated_at"}


def save_bot(bot: Bot | None, changes: dict[str, Any]) -> Bot:
    """Create or update a bot. A blank `api_key` keeps the stored key (it is never shown,
    so forms and clients send nothing to leave it alone); `clear_api_key` removes it."""
    changes = dict(changes)
    knowledge_bases = changes.pop("knowledge_bases", None)
    if changes.pop("clear_api_key", False):
        changes["api_key"] = ""
    elif not changes.get("api_key"):
        changes.pop("api_key", None)
    unknown = set(changes) - BOT_FIELDS
    if unknown:
        raise ValueError(f"Unknown bot fields: {sorted(unknown)}")
    bot = bot or Bot()
    for name, value in changes.items():
        setattr(bot, name, value)
    bot.full_clean()
    with transaction.atomic():
        bot.save()
        if knowledge_bases is not None:
            bot.knowledge_bases.set(knowledge_bases)
    return bot


def delete_bot(bot: Bot) -> None:
    bot.delete()  # conversations go with it (CASCADE)
