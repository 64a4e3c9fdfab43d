"""Platform tasks."""

from django.contrib.auth import get_user_model
from django.db import connection

from chatbot.celery import app


@app.task
def ping() -> dict[str, object]:
    """Proves the wiring: reports the schema the worker ran in and what it sees there."""
    users = list(get_user_model().objects.order_by("username").values_list("username", flat=True))
    return {"schema": connection.schema_name, "users": users}


@app.task(bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    """One attempt at a webhook delivery; retried later while the receiver fails in a way
    that may pass (network, 408, 429, 5xx), up to PARLEY_WEBHOOK_MAX_ATTEMPTS."""
    from chatbot import webhooks
    from chatbot.models import WebhookDelivery

    delivery = (
        WebhookDelivery.objects.select_related("webhook")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return "gone"  # deleted, or already delivered by an earlier run of this task
    webhooks.attempt_delivery(delivery)
    if delivery.status == WebhookDelivery.Status.PENDING:
        raise self.retry(countdown=webhooks.retry_delay(delivery.attempts))
    return delivery.status
