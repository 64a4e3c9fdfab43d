"""Platform tasks."""

from django.contrib.auth import get_user_model
from django.db import connection

from chatbot.celery import app


@app.task
def ping() -> dict[str, object]:
    """Proves the wiring: reports the schema the worker ran in and what it sees there."""
    users = list(get_user_model().objects.order_by("username").values_list("username", flat=True))
    return {"schema": connection.schema_name, "users": users}
