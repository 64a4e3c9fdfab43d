"""The console's Analytics page (`/admin/analytics/`): KPI cards, charts and top questions
for a period and optionally one bot, from `conversations.analytics.summary()`.

The figures reach the browser through `json_script`; `static/parley/analytics.js` draws
them with Chart.js served from our own static files (no CDN, no inline script).
Importing this module registers the page on the console.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from chatbot.console import ConsoleView
from chatbot.models import Bot
from conversations import analytics

PERMISSION = "conversations.view_analytics"
PRESETS = [7, 30, 90]


@dataclass
class Card:
    label: str
    value: str
    hint: str = ""


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def cards(summary: dict[str, Any]) -> list[Card]:
    totals = summary["totals"]
    latency, ttft = summary["latency_ms"], summary["ttft_ms"]
    return [
        Card("Conversations", f"{totals['conversations']:,}", "started in the period"),
        Card("Questions", f"{totals['questions']:,}", f"{totals['messages']:,} messages in all"),
        Card(
            "Answered",
            percent(totals["answered_rate"]),
            f"{totals['answered']:,} of {totals['answers']:,} answers",
        ),
        Card(
            "Thumbs up",
            percent(totals["thumbs_up_ratio"]),
            f"{totals['ratings_up']:,} up · {totals['ratings_down']:,} down",
        ),
        Card("Latency", millis(latency["p50"]), f"median · p95 {millis(latency['p95'])}"),
        Card("First token", millis(ttft["p50"]), f"median · p95 {millis(ttft['p95'])}"),
        Card(
            "Tokens",
            f"{totals['tokens_in'] + totals['tokens_out']:,}",
            f"{totals['tokens_in']:,} in · {totals['tokens_out']:,} out",
        ),
        Card(
            "Estimated cost",
            f"${totals['cost_usd']:,.2f}",
            f"list prices of {summary['prices_as_of']}",
        ),
    ]


def period_from(request: HttpRequest) -> tuple[analytics.Period, str, str]:
    """The period asked for (a preset or custom dates), the preset key ("7", "30", "90" or
    "custom") and an error to show; a bad parameter falls back to the default period."""
    params = request.GET
    if params.get("from") or params.get("to"):
        try:
            return analytics.parse_period(params.get("from"), params.get("to")), "custom", ""
        except analytics.PeriodError as exc:
            return analytics.Period.last_days(analytics.DEFAULT_DAYS), "30", exc.message
    days = params.get("days", str(analytics.DEFAULT_DAYS))
    if not days.isdigit() or int(days) not in PRESETS:
        return analytics.Period.last_days(analytics.DEFAULT_DAYS), "30", "Unknown period."
    return analytics.Period.last_days(int(days)), days, ""


def analytics_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    period, preset, error = period_from(request)
    bots = list(Bot.objects.order_by("name").values_list("public_id", "name"))
    bot = None
    if request.GET.get("bot"):
        bot = Bot.objects.filter(public_id=request.GET["bot"]).first()
        if bot is None:
            raise Http404("No such bot.")
    summary = analytics.summary(period, bot)
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "summary": summary,
        "cards": cards(summary),
        "presets": PRESETS,
        "preset": preset,
        "bots": bots,
        "bot": bot,
        "last_day": period.end - dt.timedelta(days=1),
        "error": error,
    }
    return TemplateResponse(request, "admin/analytics/analytics.html", context)


admin.site.register_view(  # type: ignore[attr-defined]
    ConsoleView(key="analytics", name="Analytics", url_name="analytics", permission=PERMISSION),
    path("analytics/", admin.site.admin_view(analytics_view), name="analytics"),
)
