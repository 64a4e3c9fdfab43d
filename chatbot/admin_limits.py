"""Console page "Usage and limits": this month's usage against the tenant's quotas and its
rate limits, for owners (agents see no billing-like limits)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from chatbot import limits
from chatbot.console import ConsoleView

PERMISSION = "chatbot.view_limits"


def row(name: str, used: int, limit: int, unit: str, resets: str) -> dict:
    share = round(100 * used / limit) if limit else None
    return {
        "name": name,
        "used": used,
        "limit": limit,
        "unit": unit,
        "share": min(share, 100) if share is not None else None,
        "over": bool(limit) and used >= limit,
        "resets": resets,
    }


def limits_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        return HttpResponse(status=403)
    tenant = connection.tenant
    used = limits.usage()
    next_month = (limits.month_start() + timedelta(days=32)).replace(day=1)
    resets = f"resets {next_month:%Y-%m-%d} 00:00 UTC"
    context = {
        **admin.site.each_context(request),
        "title": "Usage and limits",
        "rows": [
            row(
                "Visitor messages this month",
                used.messages,
                tenant.max_messages_per_month,
                "messages",
                resets,
            ),
            row(
                "LLM tokens this month",
                used.llm_tokens,
                tenant.max_llm_tokens_per_month,
                "tokens",
                resets,
            ),
            row(
                "Knowledge: pages and files", used.documents, tenant.max_documents, "documents", ""
            ),
        ],
        "api_rate": limits.api_rate(tenant),
        "visitor_rate": limits.visitor_rate(tenant),
    }
    return TemplateResponse(request, "admin/limits.html", context)


admin.site.register_view(
    ConsoleView(key="limits", name="Usage and limits", url_name="limits", permission=PERMISSION),
    path("limits/", admin.site.admin_view(limits_view), name="limits"),
)
