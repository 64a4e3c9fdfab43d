"""Visitor WebSocket routes."""

websocket_urlpatterns: list = []
