"""One error shape for every API error: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "The request is not valid.", response.data)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        message = str(detail) if isinstance(detail, str) else str(exc.default_detail)
        if response.status_code == status.HTTP_404_NOT_FOUND:
            code, message = "not_found", "Not found."
        body = error_body(str(code), message)
    else:  # Http404 and PermissionDenied turned into responses by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
        body = error_body(code, str(response.data.get("detail", "")))
    response.data = body
    return response


def json_404(request, exception=None):  # type: ignore[no-untyped-def]
    """404 for unknown paths under /api/, in the API's error shape."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)
