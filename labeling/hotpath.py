"""The plain SQL of the per-image requests (token, lease, answer, batch progress), in one place.

Every image an annotator labels runs these; building the same queries with the ORM cost more Python
time than the database spent on them. Each statement is a named constant and runs through `execute`
under its name; rows come back by column name (`fetch_one`, `fetch_all`) and become model instances
converted exactly as the ORM would (`loaded`: JSON parsed by the field, and so on; each field's
converters are looked up once).

`execute` prepares a statement once per database session: these are small index lookups that
PostgreSQL plans in more time than it runs them (planning the answer's lock query, five joins, cost
~0.3–1.5 ms against 0.2 ms of execution). It sends `PREPARE name AS …` the first time a session runs
a statement and `EXECUTE name(…)` from then on (PostgreSQL keeps a generic plan after a few runs).
A prepared statement is session state that survives rollbacks; the names prepared are kept with the
driver connection they were prepared on, so a new connection starts with none. Behind a pooler in
transaction mode (e.g. PgBouncer) consecutive statements may reach different sessions: set
`WINNOW_PREPARED_STATEMENTS=0` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model

from .models import BatchStatus, TaskStatus, batch_sources

_ATTRIBUTE = "_winnow_prepared"


def execute(cursor: CursorWrapper, name: str, sql: str, params: Sequence[Any]) -> None:
    """Run `sql` (with %s placeholders) as the prepared statement `name` (plain, when prepared statements are off)."""
    database = cursor.db  # this thread's connection (django.db.connection is a proxy shared by all threads)
    if not settings.WINNOW_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    state = database.__dict__.get(_ATTRIBUTE)
    if state is None or state[0] is not database.connection:  # a new session has nothing prepared
        state = database.__dict__[_ATTRIBUTE] = (database.connection, set())
    prepared: set[str] = state[1]
    if name not in prepared:
        pieces = sql.split("%s")
        if len(pieces) - 1 != len(params):
            raise ValueError(f"{name}: {len(pieces) - 1} placeholders for {len(params)} parameters")
        numbered = "".join(f"{piece}${i}" for i, piece in enumerate(pieces[:-1], start=1)) + pieces[-1]
        cursor.execute(f"PREPARE {name} AS {numbered}")
        prepared.add(name)
    if params:
        cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
    else:
        cursor.execute(f"EXECUTE {name}")





ModelT = TypeVar("ModelT", bound=Model)


@cache
def _converters(field: Field) -> tuple[tuple[Any, Any], ...]:
    """(converter, expression) pairs the ORM applies to this field's column."""
    col = field.cached_col
    return tuple((c, col) for c in connection.ops.get_db_converters(col) + col.get_db_converters(connection))


def fetch_one(cursor: CursorWrapper) -> dict[str, Any] | None:
    """The next row as a dict by column name (the statements name every column they return), or None."""
    row = cursor.fetchone()
    return None if row is None else dict(zip([c.name for c in cursor.description], row, strict=True))


def fetch_all(cursor: CursorWrapper) -> list[dict[str, Any]]:
    """The remaining rows as dicts by column name."""
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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




# The project's leasing settings and the caller's membership, in one read (plain SQL: every image runs it).
LEASE_PROJECT = """
SELECT p.overlap, p.lease_seconds, p.lease_order, m.id AS member_id, m.paused_at, m.paused_reason
FROM labeling_project p
LEFT JOIN labeling_membership m ON m.project_id = p.id AND m.user_id = %s
WHERE p.id = %s AND p.deleted_at IS NULL
"""


# The database function leases; the same statement returns the leased tasks with their images.
LEASE_CALL = """
SELECT t.id, t.project_id, t.batch_id, t.unique_id, t.metadata, t.created_at, t.asset_id,
       a.sha256, a.width, a.height, a.format, a.byte_size, a.file, a.thumbnail
FROM winnow_lease_tasks(%s, %s, %s, %s, %s, %s, %s, %s) leased
JOIN labeling_task t ON t.id = leased.leased_task
LEFT JOIN labeling_asset a ON a.id = t.asset_id
ORDER BY t.batch_id, t.created_at, t.id
"""


# Leasing in another order (migration 0017): least confident first, one suggested choice, or given look-alikes.
LEASE_RANKED = """
SELECT t.id, t.project_id, t.batch_id, t.unique_id, t.metadata, t.created_at, t.asset_id,
       a.sha256, a.width, a.height, a.format, a.byte_size, a.file, a.thumbnail
FROM winnow_lease_ranked(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) leased
JOIN labeling_task t ON t.id = leased.leased_task
LEFT JOIN labeling_asset a ON a.id = t.asset_id
ORDER BY leased.ordinal
"""


# The answer path's reads, as plain SQL: every image an annotator labels runs them, and building the
# same queries with the ORM cost more Python time than the database spent on them.
ANSWER_LOCK = """
SELECT t.project_id, t.batch_id, t.status, t.annotation_count, t.extra_answers, t.is_gold, t.gold_choice_id,
       t.decided_by, t.callback_url, p.overlap, b.status AS batch_status, m.id AS member_id, m.paused_at,
       m.paused_reason, c.id AS choice_id,
       EXISTS (SELECT 1 FROM labeling_webhook w WHERE w.project_id = t.project_id AND w.active) AS hooked
FROM labeling_task t
JOIN labeling_project p ON p.id = t.project_id
JOIN labeling_batch b ON b.id = t.batch_id
LEFT JOIN labeling_membership m ON m.project_id = t.project_id AND m.user_id = %s
LEFT JOIN labeling_choice c ON c.id = %s AND c.project_id = t.project_id
WHERE t.id = %s AND t.deleted_at IS NULL
FOR UPDATE OF t
"""


# Read after the row lock is granted, in a statement of its own: under READ COMMITTED a statement
# sees what was committed before it started, so answers and leases committed by the transaction
# the lock waited for (a double click, a retry) are seen here, not missed.
ANSWER_STATE = """
SELECT 'answer' AS kind, a.id, a.choice_id, a.annotator_id, NULL AS expires_at FROM labeling_annotation a
WHERE a.task_id = %s AND a.discarded_at IS NULL
UNION ALL
SELECT 'lease', l.id, NULL, l.annotator_id, l.expires_at FROM labeling_lease l
WHERE l.task_id = %s AND l.annotator_id = %s
"""


# The statuses are written into the text (they are the models' constants), so the plan is the same for every batch.
BATCH_LABELED = f"""
UPDATE labeling_batch SET status = '{BatchStatus.LABELED.value}', labeled_at = %s
WHERE id = %s AND status IN ({", ".join(f"'{s}'" for s in batch_sources(BatchStatus.LABELED))})
  AND NOT EXISTS (SELECT 1 FROM labeling_task t WHERE t.batch_id = %s AND t.deleted_at IS NULL
                  AND t.status IN ('{TaskStatus.PENDING.value}', '{TaskStatus.QUEUED.value}'))
"""  # noqa: S608 (no request data in the text)
