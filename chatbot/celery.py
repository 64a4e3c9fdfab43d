"""The Celery app. tenant-schemas-celery stamps every task with the schema it was sent
from and switches the worker's connection to that schema before the task runs."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")

app = CeleryApp("chatbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def send_in_schema(task, schema_name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Send a task to run in `schema_name`, whatever schema this thread's connection is on.

    Async consumers must use this: the event loop's connection sits in the public schema.
    """
    return task.apply_async(args=args, kwargs=kwargs, headers={"_schema_name": schema_name})
