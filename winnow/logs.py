"""Logs: each request's id, and one JSON object per line when LOG_FORMAT=json.

The id comes from the `X-Request-ID` header a proxy set (when it looks like one) or is made here; it
is sent back in the response's `X-Request-ID` and written on every log line the request causes, so
a proxy's access log, the app's lines and a client's report can be matched.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get("X-Request-ID", "")
        rid = sent if SANE_ID.fullmatch(sent) else uuid.uuid4().hex  # a header is never trusted into the logs raw
        request_id.set(rid)
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response


@receiver(request_finished)
def _forget_request_id(**kwargs: Any) -> None:
    """The id is kept until the response is closed, so Django's own line about it ("Not Found: …",
    written after the middleware returned) and a streamed body's lines carry it too."""
    request_id.set(None)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id (inside a request), exception (when one is logged)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
