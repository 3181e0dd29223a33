"""Plain SQL statements prepared once per database connection.

The per-image statements (token, lease, answer) are small index lookups that PostgreSQL plans in
more time than it runs them: planning the answer's lock query (five joins) cost ~0.3–1.5 ms against
0.2 ms of execution. `execute` sends `PREPARE name AS …` the first time a connection runs a
statement and `EXECUTE name(…)` from then on, so each is planned once per connection (PostgreSQL
keeps a generic plan after a few runs). A prepared statement
is session state that survives rollbacks; the names prepared are kept with the driver connection
they were prepared on, so a new connection starts with none. It does not work behind a pooler in transaction mode (e.g. PgBouncer), where consecutive
statements may reach different sessions: set `WINNOW_PREPARED_STATEMENTS=0` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.backends.utils import CursorWrapper

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
