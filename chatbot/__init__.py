"""Parley's project package, and the bot app itself."""

from chatbot.celery import app as celery_app

__all__ = ["celery_app"]
