"""The embed snippet of a bot, and the block the bot's admin page shows: the snippet with a
copy button, the allowed origins it will work on, and a live preview (a stand-in page of
this host that loads widget.js, framed by the admin)."""

from __future__ import annotations

from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from chatbot.models import Bot


def snippet(bot: Bot, host: str, scheme: str = "https") -> str:
    """The one tag a site pastes into its pages (plain text: escape it to show it)."""
    return f'<script src="{scheme}://{host}/widget.js" data-bot="{bot.public_id}" async></script>'


def embed_html(bot: Bot, host: str, scheme: str = "https") -> SafeString:
    """Admin read-only block. Everything variable goes through format_html (escaped); the
    copy button is wired by a static script, so the block works under a strict CSP too."""
    if not bot.pk:
        return format_html("<p>{}</p>", "Save the bot to get its embed snippet.")
    code_id = f"parley-snippet-{bot.public_id}"
    chat_url = reverse("widget:chat", args=[bot.public_id])
    preview_url = reverse("widget:preview", args=[bot.public_id])
    if bot.origins:
        where = format_html(
            "Works on your own host and on: {}.",
            format_html_join(", ", "<code>{}</code>", ((origin,) for origin in bot.origins)),
        )
    else:
        where = mark_safe(
            "No allowed origins yet: the widget only works on this host. Add your site's "
            "origin (<code>https://www.example.com</code>) under <em>Allowed origins</em>."
        )
    return format_html(
        '<link rel="stylesheet" href="{css}">'
        '<div class="parley-embed">'
        '<p class="parley-embed-help">Paste this tag into every page of your site, just '
        "before <code>&lt;/body&gt;</code>. {where}</p>"
        '<div class="parley-embed-snippet">'
        '<pre><code id="{code_id}">{code}</code></pre>'
        '<button type="button" class="button parley-embed-copy" data-copy="{code_id}">'
        "Copy snippet</button>"
        '<span class="parley-embed-copied" role="status" aria-live="polite"></span>'
        "</div>"
        '<p class="parley-embed-help">Hosted chat page: <a href="{chat_url}" target="_blank" '
        'rel="noopener">{scheme}://{host}{chat_url}</a></p>'
        '<p class="parley-embed-help"><strong>Live preview</strong> (saved settings; '
        "questions asked here are real conversations):</p>"
        '<iframe class="parley-embed-preview" src="{preview_url}" title="Live preview of the '
        'chat widget" loading="lazy"></iframe>'
        "</div>"
        '<script src="{js}" defer></script>',
        css=static("widget/embed-admin.css"),
        js=static("widget/embed-admin.js"),
        where=where,
        code_id=code_id,
        code=snippet(bot, host, scheme),
        chat_url=chat_url,
        preview_url=preview_url,
        scheme=scheme,
        host=host,
    )
