"""Console pages of the handoff: the live inbox where agents take and answer conversations,
and the support hours (owners)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from chatbot.console import ConsoleView
from conversations.consumers import PERMISSION
from conversations.models import WEEKDAYS, SupportHours


def inbox_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        return HttpResponse(status=403)
    context = {
        **admin.site.each_context(request),
        "title": "Handoffs",
        "agent_name": request.user.get_full_name() or request.user.get_username(),
    }
    return TemplateResponse(request, "admin/handoff/inbox.html", context)


admin.site.register_view(
    ConsoleView(
        key="handoff-inbox", name="Handoffs (live)", url_name="handoffs", permission=PERMISSION
    ),
    path("handoffs/", admin.site.admin_view(inbox_view), name="handoffs"),
)


@admin.register(SupportHours)
class SupportHoursAdmin(admin.ModelAdmin):
    fields = ["always_open", "timezone", "hours", "offline_message"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # one row per tenant, made on first visit (no query on every page)

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        hours = SupportHours.objects.first() or SupportHours.objects.create()
        return HttpResponseRedirect(
            reverse("admin:conversations_supporthours_change", args=[hours.pk])
        )

    def get_form(self, request, obj=None, **kwargs):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["hours"].help_text = (
            'Per weekday, e.g. {"mon": "09:00-17:00", "sat": "10:00-12:00,14:00-16:00"}; '
            f"days: {', '.join(WEEKDAYS)}; a missing day is closed."
        )
        return form
