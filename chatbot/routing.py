"""WebSocket routes: staff sockets here, visitor sockets from the widget app."""

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chatbot.consumers import PingConsumer
from conversations.consumers import StaffInboxConsumer
from widget.routing import websocket_urlpatterns as visitor_urlpatterns

websocket_urlpatterns = [
    # Staff sockets carry the session cookie: only pages of our own hosts may open them.
    path("ws/ping/", AllowedHostsOriginValidator(PingConsumer.as_asgi())),
    path("ws/staff/inbox/", AllowedHostsOriginValidator(StaffInboxConsumer.as_asgi())),
    *visitor_urlpatterns,
]
