"""Visitor-facing HTTP routes of a tenant's host: the hosted chat page and widget.js."""

from django.urls import path

from widget import views

app_name = "widget"

urlpatterns = [
    path("widget.js", views.widget_js, name="widget-js"),
    path("chat/<str:public_id>/", views.chat_page, name="chat"),
    path("chat/<str:public_id>/config.json", views.chat_config, name="config"),
    path("chat/<str:public_id>/preview/", views.preview_page, name="preview"),
]
