"""Tell the planner winnow_lease_tasks() returns a handful of rows, not the default 1,000.

The lease statement joins the function's result to labeling_task and labeling_asset. Estimating
1,000 leased ids, the planner preferred a merge or hash join over the whole task table (a scan of
every task of every project) whenever the table was small or its statistics stale — right after a
bulk import, before autovacuum analysed it — so next-task cost grew with the database. An annotator
holds at most MAX_LEASED_TASKS and usually asks for one: with ROWS 10 the plan is a nested loop of
primary-key lookups whatever the statistics say.
"""

from django.db import migrations

SIGNATURE = "winnow_lease_tasks(bigint, integer, integer, integer, text[], timestamptz, timestamptz, timestamptz)"


class Migration(migrations.Migration):
    dependencies = [("labeling", "0012_background_job_delivery")]

    operations = [
        migrations.RunSQL(f"ALTER FUNCTION {SIGNATURE} ROWS 10", f"ALTER FUNCTION {SIGNATURE} ROWS 1000"),
    ]
