"""Serializers that refuse what they do not know.

DRF ignores a field it has no name for, so `{"sample_size": 20}` sent to a route that takes `size`
drew a sample of the default size without a word. Every request serializer of the project derives
from `Serializer` or `ModelSerializer` here: a key the serializer has no field for is a 400 naming
it and the accepted fields (read-only ones count as known, so a client may send back an object it
read). `refuse_unknown` does the same for the few bodies read without a serializer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework import serializers


def unknown_fields_error(unknown: Iterable[str], accepted: Iterable[str]) -> serializers.ValidationError:
    names = ", ".join(sorted(accepted)) or "no fields"
    return serializers.ValidationError(
        {name: [f"unknown field; this request accepts {names}"] for name in sorted(unknown)}
    )


def refuse_unknown(data: Any, accepted: Iterable[str]) -> None:
    """Raise a 400 naming each key of `data` (a JSON object or form) that is not in `accepted`."""
    accepted = set(accepted)
    if isinstance(data, Mapping):
        unknown = set(data) - accepted
        if unknown:
            raise unknown_fields_error(unknown, accepted)


class RefuseUnknownFields:
    """Mixin for DRF serializers: validation fails on keys the serializer has no field for."""

    def to_internal_value(self, data: Any) -> Any:
        refuse_unknown(data, self.fields)  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class Serializer(RefuseUnknownFields, serializers.Serializer):
    pass


class ModelSerializer(RefuseUnknownFields, serializers.ModelSerializer):
    pass
