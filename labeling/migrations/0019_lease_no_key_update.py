"""Both lease functions take their candidate tasks FOR NO KEY UPDATE SKIP LOCKED, not FOR UPDATE.

Writing any row that points at a task (an answer, a lease, a suggestion, a label-quality score) makes
PostgreSQL's foreign-key check take FOR KEY SHARE on the task until that transaction ends (at its
commit: Django's constraints are deferred). FOR UPDATE conflicts with KEY SHARE, so a lease that
ran into such a check skipped the task as if another annotator were leasing it: a suggestion refit
committing its suggestions could hand an annotator fewer tasks than were open. FOR NO KEY UPDATE,
the lock PostgreSQL's own UPDATE of non-key columns takes, does not conflict with KEY SHARE, and still
conflicts with itself (two leases) and with the answer path's FOR UPDATE, so concurrent leases and
answers exclude each other as before. The functions are otherwise those of 0009 (with 0013's ROWS 10)
and 0017.
"""

import importlib

from django.db import migrations

OLD_LOCK = "FOR UPDATE OF t SKIP LOCKED"
NEW_LOCK = "FOR NO KEY UPDATE OF t SKIP LOCKED"

_tasks = importlib.import_module("labeling.migrations.0009_lease_function")
_rows = importlib.import_module("labeling.migrations.0013_lease_function_rows")
_ranked = importlib.import_module("labeling.migrations.0017_lease_ranked")


def _swap(sql: str, old: str, new: str) -> str:
    assert sql.count(old) == 1, "each lease function takes its candidates in one statement"
    return sql.replace(old, new)


# CREATE OR REPLACE resets a function's row estimate, so 0013's ROWS 10 is set again after it.
ROWS = f"ALTER FUNCTION {_rows.SIGNATURE} ROWS 10"
FORWARD = [_swap(_tasks.LEASE_FUNCTION, OLD_LOCK, NEW_LOCK), ROWS, _swap(_ranked.FUNCTION, OLD_LOCK, NEW_LOCK)]
BACKWARD = [_tasks.LEASE_FUNCTION, ROWS, _ranked.FUNCTION]


class Migration(migrations.Migration):
    dependencies = [("labeling", "0018_label_quality")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
