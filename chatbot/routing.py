"""WebSocket routes (later issues add the visitor chat and the staff inbox)."""

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chatbot.consumers import PingConsumer

websocket_urlpatterns = [
    # Staff sockets carry the session cookie: only pages of our own hosts may open them.
    path("ws/ping/", AllowedHostsOriginValidator(PingConsumer.as_asgi())),
]
