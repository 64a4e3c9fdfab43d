"""Visitor-facing HTTP views of a tenant's host: the hosted chat page, the widget's config,
widget.js itself, and a preview page for the bot's admin.

Everything here is public (visitors are anonymous), so each view reaches its bot through
`get_bot_for_request`, which only sees the request's tenant: another tenant's public id is a
404 like an unknown one. The chat page is meant to be framed by the bot's allowed origins,
so it answers with a Content-Security-Policy whose `frame-ancestors` lists them, and is
exempt from the project-wide `X-Frame-Options: DENY`, which would contradict it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.http import parse_etags
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from chatbot.models import Bot
from conversations.services import MAX_MESSAGE_CHARS
from widget import origins

WIDGET_JS = "widget/widget.js"
LANGUAGE_PROBE = "Talk to a person"  # a visitor string: translated means "we speak it"
DEFAULT_COLOR = "#4f46e5"
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_SUGGESTIONS = 6


def get_bot_for_request(request: HttpRequest, public_id: str) -> Bot:
    """The bot with this public id in the request's tenant, or 404. Tenant hosts route here
    with the tenant's schema active, so a bot of another tenant is simply not found."""
    if getattr(request, "tenant", None) is None or request.tenant.schema_name == "public":
        raise Http404("No such bot.")
    bot = Bot.objects.filter(public_id=public_id).first()
    if bot is None:
        raise Http404("No such bot.")
    return bot


# --- What the visitor side shows -------------------------------------------------------------
def text_color_on(background: str) -> str:
    """Black or white, whichever reads better on the bot's colour (WCAG relative luminance:
    white text needs a background darker than ~0.18)."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#ffffff" if luminance < 0.18 else "#111827"


def bot_appearance(bot: Bot) -> dict[str, Any]:
    """The settings both the chat page and the launcher use. The colour is validated again
    here (it goes into CSS) because rows written outside forms skip model validation."""
    color = bot.color if COLOR_RE.match(bot.color or "") else DEFAULT_COLOR
    avatar = bot.avatar_url if urlsplit(bot.avatar_url or "").scheme in {"http", "https"} else ""
    questions = bot.suggested_questions if isinstance(bot.suggested_questions, list) else []
    return {
        "bot": bot.public_id,
        "title": bot.display_title,
        "greeting": bot.greeting,
        "color": color,
        "textColor": text_color_on(color),
        "avatarUrl": avatar,
        "position": bot.position if bot.position in {"left", "right"} else "right",
        "suggestedQuestions": [q for q in questions if isinstance(q, str) and q.strip()][
            :MAX_SUGGESTIONS
        ],
        "offerHandoff": bool(bot.offer_handoff),
    }


def interface_strings() -> dict[str, str]:
    """Every string chat.js shows, translated here so that a locale needs no JS change.
    `%(n)s` and `%(seconds)s` are filled in by the script."""
    return {
        "you": _("You"),
        "bot": _("Assistant"),
        "agent": _("Support agent"),
        "typing": _("The assistant is typing…"),
        "stopped": _("(stopped)"),
        "sources": _("Sources"),
        "source": _("Source"),
        "citation": _("Source %(n)s"),
        "helpful": _("Helpful"),
        "notHelpful": _("Not helpful"),
        "thanks": _("Thanks for your feedback."),
        "handoff": _("Talk to a person"),
        "statusWaiting": _("A person has been asked to join. Please stay on this page."),
        "statusAgent": _("A person has joined the conversation."),
        "statusClosed": _("This conversation has been closed."),
        "statusBot": _("You are chatting with the assistant again."),
        "waitingShort": _("Waiting for a person…"),
        "agentJoined": _("%(name)s joined the conversation."),
        "nobodyAvailable": _("Nobody is available right now."),
        "leadLabel": _("Your email address, and we will get back to you:"),
        "leadSend": _("Send"),
        "leadSaved": _("Thank you! We will get back to you by email."),
        "connecting": _("Connecting…"),
        "reconnecting": _("Connection lost. Reconnecting…"),
        "offline": _("You are offline. Your message will be sent when you are back online."),
        "unavailable": _("This chat is not available here."),
        "error": _("Something went wrong. Please try again."),
        "tooLong": _("That message is too long. Please shorten it."),
        "busy": _("Please wait for the answer, or stop it, before asking again."),
        "rateLimited": _("Too many messages. Please try again in %(seconds)s seconds."),
    }


def visitor_language(request: HttpRequest) -> str:
    """The visitor's language (Accept-Language) when Parley's visitor strings are translated
    into it, else the site's. Django and other apps ship catalogues for many languages, and
    following those alone would label English text as German (and screen readers would
    pronounce it so): a language counts only if our own probe string is translated."""
    wanted = translation.get_language_from_request(request)
    if wanted.split("-")[0] == settings.LANGUAGE_CODE.split("-")[0]:
        return wanted
    with translation.override(wanted):
        if _(LANGUAGE_PROBE) != LANGUAGE_PROBE:
            return wanted
    return settings.LANGUAGE_CODE


# --- Headers ---------------------------------------------------------------------------------
def theme_css(bot: Bot) -> str:
    """The bot's colours as CSS variables: the one inline style of the chat page, allowed by
    its hash (no flash of the default colour while a script would apply them)."""
    appearance = bot_appearance(bot)
    return f":root{{--accent:{appearance['color']};--on-accent:{appearance['textColor']}}}"


def style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def content_security_policy(
    request: HttpRequest,
    bot: Bot,
    *,
    ancestors: list[str],
    frames: bool = False,
    inline_style: str = "",
) -> str:
    """A strict policy: our own scripts and styles only (plus one inline style by hash), no
    inline scripts, WebSockets to this host only, images from here and the bot's avatar
    host, framed only by `ancestors`."""
    host = request.get_host()
    images = ["'self'", "data:"]
    avatar = bot_appearance(bot)["avatarUrl"]
    if avatar:
        parts = urlsplit(avatar)
        images.append(f"{parts.scheme}://{parts.netloc}")
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' {style_hash(inline_style)}" if inline_style else "style-src 'self'",
        f"img-src {' '.join(images)}",
        f"connect-src 'self' ws://{host} wss://{host}",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-src 'self'" if frames else "frame-src 'none'",
        f"frame-ancestors {' '.join(ancestors)}",
    ]
    return "; ".join(directives)


def visitor_headers(response: HttpResponse, request: HttpRequest, bot: Bot, **csp: Any) -> None:
    response["Content-Security-Policy"] = content_security_policy(request, bot, **csp)
    response["Referrer-Policy"] = "strict-origin-when-cross-origin"
    # Bot settings change in the console: the page must show them at once.
    response["Cache-Control"] = "no-cache"


# --- Views -----------------------------------------------------------------------------------
@require_safe
@xframe_options_exempt  # framing is governed by the CSP's frame-ancestors instead
def chat_page(request: HttpRequest, public_id: str) -> HttpResponse:
    bot = get_bot_for_request(request, public_id)
    embedded = request.GET.get("embed") == "1"
    theme = theme_css(bot)
    with translation.override(visitor_language(request)):
        config = {
            **bot_appearance(bot),
            "socketPath": f"/ws/chat/{bot.public_id}/",
            "channel": "widget" if embedded else "page",
            "embedded": embedded,
            "maxLength": MAX_MESSAGE_CHARS,
        }
        response = render(
            request,
            "widget/chat.html",
            {
                "config": config,
                "theme_css": theme,
                "strings": interface_strings(),
                "embedded": embedded,
                "language": translation.get_language(),
            },
        )
    ancestors = origins.frame_ancestors(bot, request.get_host())
    visitor_headers(response, request, bot, ancestors=ancestors, inline_style=theme)
    return response


@require_safe
def chat_config(request: HttpRequest, public_id: str) -> JsonResponse:
    """What widget.js needs before the visitor opens the chat (the launcher's colour, side,
    title and avatar). Readable cross-origin only by the bot's allowed origins: on any other
    site the widget could not frame the chat page anyway, so it stays hidden there."""
    bot = get_bot_for_request(request, public_id)
    with translation.override(visitor_language(request)):
        strings = {"open": _("Open chat"), "close": _("Close chat"), "unread": _("%(n)s new")}
    response = JsonResponse(
        {**bot_appearance(bot), "chatUrl": f"/chat/{bot.public_id}/?embed=1", "strings": strings}
    )
    origin = request.headers.get("Origin", "")
    tenant_hosts = [domain.domain for domain in request.tenant.domains.all()]
    if origins.allowed_origin(bot, origin, tenant_hosts):
        response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin"
    response["Cache-Control"] = "max-age=60"
    return response


@lru_cache(maxsize=1)
def _widget_source() -> tuple[bytes, str]:
    path = finders.find(WIDGET_JS)
    if not path:
        raise RuntimeError(f"static file {WIDGET_JS} is missing")
    data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


@require_safe
@gzip_page
def widget_js(request: HttpRequest) -> HttpResponse:
    """widget.js at a fixed address (the snippet cannot carry a hashed static name), so it
    is cached briefly and revalidated through its ETag."""
    if settings.DEBUG:
        _widget_source.cache_clear()
    data, digest = _widget_source()
    etag = f'"{digest}"'
    # gzip_page weakens the ETag it sends (W/"…"): a weak match is a match for a GET.
    known = {
        tag.removeprefix("W/") for tag in parse_etags(request.headers.get("If-None-Match", ""))
    }
    if etag in known or "*" in known:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(data, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=300"
    # Sites that isolate themselves (COEP) may still load the script.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_safe
@xframe_options_exempt
def preview_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """A stand-in web page that embeds the widget as a customer's site would: the live
    preview on the bot's admin page frames it (same host)."""
    bot = get_bot_for_request(request, public_id)
    response = render(request, "widget/preview.html", {"bot": bot})
    # Only this host's pages (the admin) may frame the preview.
    visitor_headers(response, request, bot, ancestors=["'self'"], frames=True)
    response["X-Robots-Tag"] = "noindex"
    return response
