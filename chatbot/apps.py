from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ChatbotConfig(AppConfig):
    default = True  # this module also holds the console's admin config
    name = "chatbot"
    verbose_name = "Bots"

    def ready(self) -> None:
        from chatbot import admin_site, audit

        admin_site.move_platform_models_off_tenant_admin()
        audit.connect()


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin with Parley's console as the default site (grouped by task)."""

    default = False  # named explicitly in INSTALLED_APPS
    default_site = "chatbot.console.ConsoleSite"
