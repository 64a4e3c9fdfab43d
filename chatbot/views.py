"""Project-wide views."""

from django.http import HttpRequest, HttpResponse
from django.views.defaults import page_not_found

from chatbot.api_errors import json_404


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return page_not_found(request, exception)  # type: ignore[arg-type]
