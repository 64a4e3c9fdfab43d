"""Visitor WebSocket routes (included by chatbot/routing.py)."""

from django.urls import path

from widget.consumers import VisitorConsumer

websocket_urlpatterns = [
    path("ws/chat/<str:public_id>/", VisitorConsumer.as_asgi()),
]
