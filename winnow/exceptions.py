"""Domain exceptions, and the one DRF handler that maps them to responses.

Domain code never imports DRF: it raises these (or an app's subclasses, e.g. labeling's
`CalibrationRequired`), and `api_exception_handler` turns them into a 400, 403, 404 or 409 with a
message that says how to fix the request.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)
    return exception_handler(exc, context)
