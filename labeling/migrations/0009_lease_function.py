"""winnow_lease_tasks(): the whole of services.lease_tasks as one PostgreSQL function call.

Leasing is the request annotators make most. As ORM statements it is eleven round trips; as one
function call it is one, planned once per connection. services.lease_tasks calls this on PostgreSQL
and runs the same steps as ORM statements elsewhere (tests run both on PostgreSQL and compare).
Every statement in a VOLATILE PL/pgSQL function takes a fresh snapshot under READ COMMITTED, which
the re-count under the row lock relies on, exactly as the ORM version's separate query does.
"""

from django.db import migrations

LEASE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION winnow_lease_tasks(
    p_project bigint, p_annotator integer, p_count integer, p_overlap integer, p_batch_statuses text[],
    p_now timestamptz, p_expires timestamptz, p_skipped_since timestamptz
) RETURNS TABLE (leased_task bigint) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_held bigint[];
    v_fresh bigint[] := '{}';
    v_seen bigint[] := '{}';
    v_chunk bigint[];
    v_need integer;
    v_batch bigint;
    v_row record;
BEGIN
    -- A lease is soft state: one lost in a crash just goes back to the pool, so skip the WAL flush.
    PERFORM set_config('synchronous_commit', 'off', true);

    -- The annotator's own unexpired leases on tasks still open to them come first, renewed.
    v_held := ARRAY(
        SELECT t.id FROM labeling_task t
        JOIN labeling_lease l ON l.task_id = t.id AND l.annotator_id = p_annotator AND l.expires_at > p_now
        JOIN labeling_batch b ON b.id = t.batch_id
        WHERE t.project_id = p_project AND t.status = 'queued' AND t.deleted_at IS NULL
          AND b.deleted_at IS NULL AND b.status = ANY(p_batch_statuses)
          AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                          WHERE a.task_id = t.id AND a.annotator_id = p_annotator AND a.discarded_at IS NULL)
        ORDER BY t.batch_id, t.created_at, t.id
        LIMIT p_count
    );
    IF cardinality(v_held) > 0 THEN
        UPDATE labeling_lease SET expires_at = p_expires WHERE annotator_id = p_annotator AND task_id = ANY(v_held);
    END IF;
    v_need := p_count - cardinality(v_held);

    -- New tasks, oldest open batch first, each batch in upload order (the partial index task_queued_idx).
    FOR v_batch IN
        SELECT b.id FROM labeling_batch b
        WHERE b.project_id = p_project AND b.deleted_at IS NULL AND b.status = ANY(p_batch_statuses)
        ORDER BY b.id
    LOOP
        EXIT WHEN v_need <= 0;
        LOOP
            EXIT WHEN v_need <= 0;
            v_chunk := ARRAY(
                SELECT t.id FROM labeling_task t
                WHERE t.batch_id = v_batch AND t.status = 'queued' AND t.deleted_at IS NULL
                  AND NOT (t.id = ANY(v_seen))
                  AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                                  WHERE a.task_id = t.id AND a.annotator_id = p_annotator AND a.discarded_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM labeling_lease l
                                  WHERE l.task_id = t.id AND l.annotator_id = p_annotator
                                    AND (l.expires_at > p_now OR l.skipped_at > p_skipped_since))
                  AND t.annotation_count < p_overlap + t.extra_answers - (
                      SELECT count(*) FROM labeling_lease l
                      WHERE l.task_id = t.id AND l.expires_at > p_now AND l.annotator_id <> p_annotator)
                ORDER BY t.created_at, t.id
                LIMIT v_need
                FOR UPDATE OF t SKIP LOCKED
            );
            EXIT WHEN cardinality(v_chunk) = 0;
            -- Re-count under the row lock: this statement's snapshot sees leases committed since the last one.
            FOR v_row IN
                SELECT t.id, t.annotation_count, t.extra_answers,
                       (SELECT count(*) FROM labeling_lease l
                        WHERE l.task_id = t.id AND l.expires_at > p_now AND l.annotator_id <> p_annotator) AS others
                FROM labeling_task t WHERE t.id = ANY(v_chunk)
                ORDER BY t.created_at, t.id
            LOOP
                v_seen := v_seen || v_row.id;
                IF v_need > 0 AND v_row.annotation_count + v_row.others < p_overlap + v_row.extra_answers THEN
                    v_fresh := v_fresh || v_row.id;
                    v_need := v_need - 1;
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;

    -- A row may exist from an expired or skipped lease: take it over.
    INSERT INTO labeling_lease (task_id, annotator_id, expires_at, created_at, skipped_at)
    SELECT fresh.id, p_annotator, p_expires, p_now, NULL FROM unnest(v_fresh) AS fresh(id)
    ON CONFLICT ON CONSTRAINT lease_unique_annotator DO UPDATE SET expires_at = EXCLUDED.expires_at, skipped_at = NULL;

    RETURN QUERY SELECT ids.id FROM unnest(v_held || v_fresh) AS ids(id);
END
$fn$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEASE_FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS winnow_lease_tasks(bigint, integer, integer, integer, text[], timestamptz, timestamptz, timestamptz)"
        )


class Migration(migrations.Migration):
    dependencies = [("labeling", "0008_task_batch_project_fk")]
    operations = [migrations.RunPython(create_function, drop_function)]
