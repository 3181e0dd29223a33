"""winnow_lease_ranked(): leasing in an order other than upload order, as one function call.

`winnow_lease_tasks` (0009, 0013) stays the path of the default order, untouched. This function leases
the same way (own unexpired leases first and renewed; then new tasks, oldest open batch first, each
candidate taken FOR UPDATE SKIP LOCKED and re-counted under the row lock) but orders each batch's
candidates by one of:

* `p_candidates` given: those tasks only, in the array's order (look-alikes of a task, nearest first);
* `p_choice` given: tasks whose suggestion is that choice, most confident first (a suggested grid page);
* neither: least confident suggestion first, tasks without one last (project lease order "uncertainty").

It returns each leased task with its position, so callers keep this order.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION winnow_lease_ranked(
    p_project bigint, p_annotator integer, p_count integer, p_overlap integer, p_batch_statuses text[],
    p_now timestamptz, p_expires timestamptz, p_skipped_since timestamptz, p_choice bigint, p_candidates bigint[]
) RETURNS TABLE (leased_task bigint, ordinal integer) LANGUAGE plpgsql VOLATILE ROWS 10 AS $fn$
DECLARE
    v_held bigint[];
    v_fresh bigint[] := '{}';
    v_seen bigint[] := '{}';
    v_chunk bigint[];
    v_need integer;
    v_batch bigint;
    v_row record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    -- Own unexpired leases on open tasks first, renewed; in the suggested and look-alike orders only
    -- those that belong to this page.
    v_held := ARRAY(
        SELECT t.id FROM labeling_task t
        JOIN labeling_lease l ON l.task_id = t.id AND l.annotator_id = p_annotator AND l.expires_at > p_now
        JOIN labeling_batch b ON b.id = t.batch_id
        LEFT JOIN labeling_suggestion s ON s.task_id = t.id
        WHERE t.project_id = p_project AND t.status = 'queued' AND t.deleted_at IS NULL
          AND b.deleted_at IS NULL AND b.status = ANY(p_batch_statuses)
          AND (p_candidates IS NULL OR t.id = ANY(p_candidates))
          AND (p_choice IS NULL OR p_candidates IS NOT NULL OR s.choice_id = p_choice)
          AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                          WHERE a.task_id = t.id AND a.annotator_id = p_annotator AND a.discarded_at IS NULL)
        ORDER BY CASE WHEN p_candidates IS NOT NULL THEN array_position(p_candidates, t.id) END,
                 CASE WHEN p_choice IS NOT NULL THEN -s.confidence ELSE s.confidence END NULLS LAST,
                 t.batch_id, t.created_at, t.id
        LIMIT p_count
    );
    IF cardinality(v_held) > 0 THEN
        UPDATE labeling_lease SET expires_at = p_expires WHERE annotator_id = p_annotator AND task_id = ANY(v_held);
    END IF;
    v_need := p_count - cardinality(v_held);

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
                LEFT JOIN labeling_suggestion s ON s.task_id = t.id
                WHERE t.batch_id = v_batch AND t.status = 'queued' AND t.deleted_at IS NULL
                  AND (p_candidates IS NULL OR t.id = ANY(p_candidates))
                  AND (p_choice IS NULL OR p_candidates IS NOT NULL OR s.choice_id = p_choice)
                  AND NOT (t.id = ANY(v_seen) OR t.id = ANY(v_held))
                  AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                                  WHERE a.task_id = t.id AND a.annotator_id = p_annotator AND a.discarded_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM labeling_lease l
                                  WHERE l.task_id = t.id AND l.annotator_id = p_annotator
                                    AND (l.expires_at > p_now OR l.skipped_at > p_skipped_since))
                  AND t.annotation_count < p_overlap + t.extra_answers - (
                      SELECT count(*) FROM labeling_lease l
                      WHERE l.task_id = t.id AND l.expires_at > p_now AND l.annotator_id <> p_annotator)
                ORDER BY CASE WHEN p_candidates IS NOT NULL THEN array_position(p_candidates, t.id) END,
                         CASE WHEN p_choice IS NOT NULL THEN -s.confidence ELSE s.confidence END NULLS LAST,
                         t.created_at, t.id
                LIMIT v_need
                FOR UPDATE OF t SKIP LOCKED
            );
            EXIT WHEN cardinality(v_chunk) = 0;
            FOR v_row IN
                SELECT t.id, t.annotation_count, t.extra_answers,
                       (SELECT count(*) FROM labeling_lease l
                        WHERE l.task_id = t.id AND l.expires_at > p_now AND l.annotator_id <> p_annotator) AS others
                FROM unnest(v_chunk) WITH ORDINALITY AS c(id, n)
                JOIN labeling_task t ON t.id = c.id
                ORDER BY c.n
            LOOP
                v_seen := v_seen || v_row.id;
                IF v_need > 0 AND v_row.annotation_count + v_row.others < p_overlap + v_row.extra_answers THEN
                    v_fresh := v_fresh || v_row.id;
                    v_need := v_need - 1;
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;

    INSERT INTO labeling_lease (task_id, annotator_id, expires_at, created_at, skipped_at)
    SELECT fresh.id, p_annotator, p_expires, p_now, NULL FROM unnest(v_fresh) AS fresh(id)
    ON CONFLICT ON CONSTRAINT lease_unique_annotator DO UPDATE SET expires_at = EXCLUDED.expires_at, skipped_at = NULL;

    RETURN QUERY SELECT ids.id, ids.n::integer FROM unnest(v_held || v_fresh) WITH ORDINALITY AS ids(id, n);
END
$fn$;
"""

SIGNATURE = ("winnow_lease_ranked(bigint, integer, integer, integer, text[], timestamptz, timestamptz, timestamptz, "
             "bigint, bigint[])")


class Migration(migrations.Migration):
    dependencies = [("labeling", "0016_assist")]
    operations = [migrations.RunSQL(FUNCTION, f"DROP FUNCTION IF EXISTS {SIGNATURE}")]
