"""The API's JSON parser: DRF's, with a limit on the body's size and on how deeply it nests.

DRF reads JSON bodies from the request stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never
applies to them: without a limit a client could make the server hold any amount. And a body nested a
thousand levels deep makes Python's JSON decoder (or any code that walks the result) raise
RecursionError, a 500 on every JSON endpoint, the anonymous token endpoint included. Here a body over
API_MAX_JSON_BYTES is a 413, and one nested deeper than MAX_JSON_DEPTH a 400, each saying what to change.
Multipart uploads keep their own limits (DATA_UPLOAD_MAX_*, the ingestion limits).
"""

from __future__ import annotations

import codecs
import json
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers, status

# Deeper than any request Winnow expects (a task's metadata is a few levels), far under Python's recursion limit.
MAX_JSON_DEPTH = 64


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request body is too large"
    default_code = "too_large"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def nesting_depth_over(value: Any, limit: int) -> bool:
    """True when lists and objects nest deeper than `limit` in `value`; walks without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(parsers.JSONParser):
    """application/json, at most `settings.<limit_setting>` bytes and MAX_JSON_DEPTH levels."""

    limit_setting = "API_MAX_JSON_BYTES"
    what = "send fewer or smaller items per request"

    def parse(self, stream: IO[bytes] | None, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        parser_context = parser_context or {}
        limit: int = getattr(settings, self.limit_setting)
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(int(declared), limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise self._too_large(None, limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=json_strict_constant if self.strict else None)
        except RecursionError as exc:
            raise self._too_deep() from exc
        except (ValueError, LookupError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if isinstance(data, dict | list) and nesting_depth_over(data, MAX_JSON_DEPTH):
            raise self._too_deep()
        return data

    def _too_large(self, size: int | None, limit: int) -> PayloadTooLarge:
        size_words = f"is {_mb(size)}" if size is not None else "is larger than that"
        return PayloadTooLarge(f"the JSON body {size_words}, over the limit of {_mb(limit)} ({self.limit_setting}); "
                               f"{self.what}")

    @staticmethod
    def _too_deep() -> exceptions.ParseError:
        return exceptions.ParseError(
            f"JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten the lists and objects you send"
        )


class UrlListJSONParser(JSONParser):
    """The URL-upload endpoint's parser: a list of up to INGEST_MAX_URL_TASKS tasks may be large."""

    limit_setting = "INGEST_MAX_JSON_BYTES"
    what = "send the tasks in several requests"


def json_strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a number or null")
