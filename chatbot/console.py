"""Each tenant's console: Django's admin site with its index grouped by task (Bots,
Knowledge, Conversations, Analytics, Settings) and room for pages that are not a model's
changelist. Kept apart from admin_site.py: Django imports it while the admin app loads."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.urls import reverse

# The console's index, grouped by task rather than by Django app. Models not listed fall
# into Settings; each section lists its entries in this order.
SECTIONS: list[tuple[str, list[str]]] = [
    ("Bots", ["chatbot.bot"]),
    ("Knowledge", ["knowledge.knowledgebase", "knowledge.source", "knowledge.document"]),
    ("Conversations", ["view:handoff-inbox", "conversations.conversation"]),
    ("Analytics", ["view:analytics", "view:gaps"]),
    (
        "Settings",
        [
            "chatbot.apikey",
            "auth.user",
            "view:invite",
            "auth.group",
            "chatbot.webhook",
            "chatbot.webhookdelivery",
            "conversations.supporthours",
            "view:limits",
            "chatbot.auditentry",
        ],
    ),
]


@dataclass
class ConsoleView:
    """A console page that is not a model's changelist (analytics, gaps, inbox)."""

    key: str
    name: str
    url_name: str
    permission: str  # "app_label.codename" the viewer needs


class ConsoleSite(admin.AdminSite):
    """Each tenant's console: Django's admin, its index grouped by task."""

    site_header = "Parley"
    site_title = "Parley console"
    index_title = "Console"
    # Registered by the apps that own them (`register_view`).
    views: dict[str, ConsoleView]

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.views = {}
        self._view_urls: list = []

    def register_view(self, view: ConsoleView, pattern) -> None:  # type: ignore[no-untyped-def]
        self.views[view.key] = view
        self._view_urls.append(pattern)

    def get_urls(self):  # type: ignore[no-untyped-def]
        return self._view_urls + super().get_urls()

    def get_app_list(self, request, app_label=None):  # type: ignore[no-untyped-def]
        app_list = super().get_app_list(request, app_label)
        if app_label:
            return app_list
        models = {
            f"{app['app_label']}.{model['object_name'].lower()}": model
            for app in app_list
            for model in app["models"]
        }
        sections = []
        placed: set[str] = set()
        for title, keys in SECTIONS:
            entries = []
            for key in keys:
                if key.startswith("view:"):
                    entry = self._view_entry(request, key[5:])
                else:
                    entry = models.get(key)
                    placed.add(key)
                if entry:
                    entries.append(entry)
            if title == "Settings":
                entries += [m for k, m in models.items() if k not in placed]
            if entries:
                sections.append(
                    {
                        "name": title,
                        "app_label": title.lower(),
                        "app_url": "",
                        "has_module_perms": True,
                        "models": entries,
                    }
                )
        return sections

    def _view_entry(self, request, key: str) -> dict | None:  # type: ignore[no-untyped-def]
        view = self.views.get(key)
        if view is None or not request.user.has_perm(view.permission):
            return None
        return {
            "name": view.name,
            "object_name": key,
            "perms": {"view": True},
            "admin_url": reverse(f"admin:{view.url_name}", current_app=self.name),
            "add_url": None,
            "view_only": True,
        }
