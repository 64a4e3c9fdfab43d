"""Visitor-facing HTTP routes of a tenant's host: the hosted chat page and widget.js."""

from django.urls import path

urlpatterns: list = []
