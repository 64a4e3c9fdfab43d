from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ChatbotConfig(AppConfig):
    default = True  # this module also holds the console's admin config
    name = "chatbot"
    verbose_name = "Bots"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from chatbot import admin_site, audit, roles

        admin_site.move_platform_models_off_tenant_admin()
        audit.connect()
        post_migrate.connect(roles.roles_after_migrate, dispatch_uid="parley-roles")


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin with Parley's console as the default site (grouped by task)."""

    default = False  # named explicitly in INSTALLED_APPS
    default_site = "chatbot.console.ConsoleSite"
