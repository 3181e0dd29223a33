"""Domain exceptions, and the one DRF handler that maps them to responses.

Domain code never imports DRF: it raises these (or an app's subclasses, e.g. labeling's
`CalibrationRequired`), and `api_exception_handler` turns them into a 400, 403, 404, 409 or 503 with a
message that says how to fix the request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """Base class: a request the domain refuses. `code` is a stable machine-readable name."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class InvalidInput(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"


class NotAllowed(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(DomainError):
    """The request is valid but the object's state forbids it now (wrong status, a duplicate, a race lost)."""

    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class StorageUnavailable(DomainError):
    """The media storage (a folder, or S3-compatible object storage) could not be reached or refused the
    request; nothing was recorded, so the same request can be sent again once it is back."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "storage_unavailable"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every refusal has one body shape: `{"detail": "…", "code": "…"}`, plus `"fields"` (field → messages,
    nested as the request was) for a validation error, whose `detail` then names each field's first problem."""
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)
    if isinstance(exc, Http404):  # as DRF does, but keeping the message the view gave
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)  # DRF's statuses and headers (Retry-After, WWW-Authenticate)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _summary(fields) or "the request is not valid", "code": "invalid",
                         "fields": fields}
    else:
        codes = exc.get_codes()
        response.data = {"detail": str(exc.detail) if not isinstance(exc.detail, (dict, list)) else _summary(exc.detail),
                         "code": codes if isinstance(codes, str) else exc.default_code}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response.data["retry_after"] = int(exc.wait + 0.999)
    return response


def _summary(detail: Any, path: str = "") -> str:
    """One sentence from DRF's nested error detail: "choices › 2 › hotkey: … ; name: …"."""
    if isinstance(detail, dict):
        parts = [_summary(v, k if not path else f"{path} › {k}") for k, v in detail.items()]
    elif isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return f"{path}: {detail[0]}" if path and path != "non_field_errors" and detail else (str(detail[0]) if detail else "")
        parts = [_summary(v, f"{path} › {i + 1}" if path else str(i + 1)) for i, v in enumerate(detail) if v]
    else:
        return f"{path}: {detail}" if path and path != "non_field_errors" else str(detail)
    return "; ".join(p for p in parts if p)


API_PREFIXES = ("/api/",)
_PAGE_STATUS_WORDS = {
    400: ("bad_request", "the request is not valid"),
    403: ("forbidden", "you may not do this"),
    404: ("not_found", "there is no such API route: see /api/docs/ for the routes and their methods"),
    405: ("method_not_allowed", "this route does not take this method: see /api/docs/"),
    500: ("server_error", "the server failed on this request; it has been logged, try again later"),
}


class ApiErrorPagesMiddleware:
    """Under /api/ every error is JSON in the one body shape, also those Django answers before a DRF view
    runs (no such route, a method a plain view refuses, a server error): never an HTML page."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIXES)
            and response.status_code in _PAGE_STATUS_WORDS
            and not response.get("Content-Type", "").startswith("application/json")
            and not getattr(response, "streaming", False)
        ):
            from django.http import JsonResponse

            code, detail = _PAGE_STATUS_WORDS[response.status_code]
            json_response = JsonResponse({"detail": detail, "code": code}, status=response.status_code)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response
