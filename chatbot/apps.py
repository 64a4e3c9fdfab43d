from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Bots"

    def ready(self) -> None:
        from chatbot import admin_site

        admin_site.move_platform_models_off_tenant_admin()
