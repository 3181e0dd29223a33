"""Model instances from rows read with plain SQL, converted exactly as the ORM converts what it reads.

The per-image endpoints (lease, answer, token check) read with plain SQL because building the same
queries with the ORM cost more Python time than the database spent on them. What they read must
still become the values the ORM would give (JSON parsed by the field, for one). Each field's
converters (the backend's and the field's own) are looked up once.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

ModelT = TypeVar("ModelT", bound=Model)


@cache
def _converters(field: Field) -> tuple[tuple[Any, Any], ...]:
    """(converter, expression) pairs the ORM applies to this field's column."""
    col = field.cached_col
    return tuple((c, col) for c in connection.ops.get_db_converters(col) + col.get_db_converters(connection))


def convert(field: Field, value: Any) -> Any:
    """A value of `field` as read by plain SQL, made what the ORM would have returned."""
    for converter, expression in _converters(field):
        value = converter(value, expression, connection)
    return value


def loaded(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """An instance as if the ORM had read only these fields (attnames → raw column values); the rest
    load on first access."""
    fields = [f for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, [f.attname for f in fields], [convert(f, values[f.attname]) for f in fields])
