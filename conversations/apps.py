from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        # Console pages that are not a model's changelist register themselves on import.
        from conversations import admin_analytics, admin_gaps, admin_handoff  # noqa: F401
