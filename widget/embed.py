"""The embed snippet of a bot, shown in its admin page."""

from __future__ import annotations

from django.utils.html import format_html

from chatbot.models import Bot


def snippet(bot: Bot, host: str, scheme: str = "https") -> str:
    return f'<script src="{scheme}://{host}/widget.js" data-bot="{bot.public_id}" async></script>'


def embed_html(bot: Bot, host: str, scheme: str = "https") -> str:
    """Admin block: the snippet (a later change adds a copy button and a live preview)."""
    return format_html("<pre><code>{}</code></pre>", snippet(bot, host, scheme))
