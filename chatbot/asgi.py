"""ASGI entry point: HTTP through Django (tenant middleware first), WebSockets through
Parley's tenant and auth middleware. daphne serves both."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chatbot.routing import websocket_urlpatterns  # noqa: E402
from tenants.asgi import tenant_websocket_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": tenant_websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
