"""Answers: submit (one image or a grid page), undo, and the batch moving to labeled as answers arrive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from winnow.exceptions import Conflict, DomainError, InvalidInput, NotFound

from . import hotpath, suggestions, webhooks
from .consensus import resolve_task
from .exceptions import LeaseExpired
from .hotpath import ANSWER_LOCK, ANSWER_STATE, BATCH_LABELED, convert, loaded
from .leasing import check_labeling_membership, is_row_id, labeling_membership
from .models import (
    LABELABLE_BATCH_STATUSES,
    Annotation,
    Batch,
    BatchStatus,
    Choice,
    DecidedBy,
    Lease,
    Project,
    Task,
    TaskStatus,
    Trap,
    batch_sources,
)

# Answers one bulk (grid) request may carry.
MAX_BULK_ANSWERS = 200




# The answer path's move of a batch, in plain SQL: its first answer starts labeling (checked against the lifecycle).
(_FIRST_ANSWER_FROM,) = batch_sources(BatchStatus.LABELING, among=(BatchStatus.FINALIZED,))

def submit_annotation(
    *, task: Task | int, annotator: AbstractBaseUser, choice_id: int, duration_ms: int, assisted: bool = False
) -> tuple[Annotation, bool]:
    """Record an annotator's answer. Returns (annotation, created).

    Idempotent: a retried or double-clicked submit of the same answer returns the first one. Takes a
    row lock on the task, so answers and lease checks for one task are serialised. Refused (nothing
    stored): a choice from another project (400), no lease or an expired lease that another
    annotator now holds (409), a task that is no longer queued (409), a different answer to a task
    already answered (409: undo it first). `task` may be a task's id (404 if there is no such live
    task). Every image labeled runs this, so its statements are plain SQL: the lock with everything
    that cannot race (project, batch, membership, choice), the answers and lease read after the lock,
    the insert, the lease release, the task update, the commit. `assisted` marks an answer given by
    confirming a suggestion (a suggested grid page); on a trap (labeling/assist.py) the answer that takes
    the shown choice is recorded as the trap accepted.
    """
    task_id = task if isinstance(task, int) else task.pk
    if not is_row_id(task_id):
        raise NotFound(f"task {task_id} does not exist")
    if not is_row_id(choice_id):
        raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
    # Inside a caller's transaction the callbacks below wait for its commit, so the batch check also runs inside.
    in_outer_transaction = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        hotpath.execute(cursor, "winnow_answer_lock", ANSWER_LOCK, [annotator.pk, choice_id, task_id])
        row = hotpath.fetch_one(cursor)
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        status, count, extra, overlap = row["status"], row["annotation_count"], row["extra_answers"], row["overlap"]
        check_labeling_membership(row["member_id"], row["paused_at"], row["paused_reason"])
        if row["choice_id"] is None:
            raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
        hotpath.execute(cursor, "winnow_answer_state", ANSWER_STATE, [task_id, task_id, annotator.pk])
        answers: list[int] = []
        lease: tuple[int, datetime] | None = None
        for state in hotpath.fetch_all(cursor):
            pk, answer_choice, by = state["id"], state["choice_id"], state["annotator_id"]
            if state["kind"] == "lease":
                lease = (pk, state["expires_at"])
                continue
            if by == annotator.pk:
                if answer_choice == choice_id:
                    existing = loaded(
                        Annotation, {"id": pk, "task_id": task_id, "annotator_id": by, "choice_id": answer_choice}
                    )
                    return existing, False
                label = Choice.objects.filter(pk=answer_choice).values_list("label", flat=True).first()
                raise Conflict(
                    f"you already answered this task with {label!r}; undo it to change your answer",
                    code="already_answered",
                )
            answers.append(answer_choice)
        if status != TaskStatus.QUEUED:
            raise Conflict(f"task is {status}, no longer taking answers", code="task_closed")
        now = timezone.now()
        if lease is None:
            raise LeaseExpired("you hold no lease on this task; ask for the next task first")
        if convert(Lease._meta.get_field("expires_at"), lease[1]) <= now:
            held = Lease.objects.filter(task_id=task_id, expires_at__gt=now).exclude(annotator=annotator).count()
            if count + held >= overlap + extra:
                raise LeaseExpired("your lease on this task expired and it was given to someone else; take the next task")
        duration_ms = max(0, min(duration_ms, 24 * 3600 * 1000))
        hotpath.execute(
            cursor, "winnow_answer_insert",
            "INSERT INTO labeling_annotation (task_id, annotator_id, choice_id, duration_ms, created_at, discarded_at,"
            " assisted) VALUES (%s, %s, %s, %s, %s, NULL, %s) RETURNING id",
            [task_id, annotator.pk, choice_id, duration_ms, now, bool(assisted)],
        )
        annotation = loaded(Annotation, {
            "id": cursor.fetchone()[0], "task_id": task_id, "annotator_id": annotator.pk, "choice_id": choice_id,
            "duration_ms": duration_ms, "created_at": now, "discarded_at": None, "assisted": bool(assisted),
        })
        cursor.execute("DELETE FROM labeling_lease WHERE id = %s", [lease[0]])
        # The row lock makes the count read above exact, so the new count is written as a value.
        batch_id = row["batch_id"]
        task = loaded(Task, {
            "id": task_id, "project_id": row["project_id"], "batch_id": batch_id, "status": status,
            "annotation_count": count + 1, "extra_answers": extra, "is_gold": bool(row["is_gold"]),
            "gold_choice_id": row["gold_choice_id"], "decided_by": row["decided_by"], "callback_url": row["callback_url"],
        })
        resolve_task(task=task, answers=[*answers, choice_id], overlap=overlap, save=["annotation_count"])
        if row["is_gold"]:
            from . import quality

            Trap.objects.filter(task_id=task_id, annotator=annotator, shown_choice_id=choice_id,
                                accepted_at__isnull=True).update(accepted_at=now)
            quality.check_annotator(project=Project.objects.get(pk=row["project_id"]), annotator=annotator)
        if task.status == TaskStatus.COMPLETED:
            if row["hooked"] or row["callback_url"]:  # emit() would find no receiver otherwise: save its query
                webhooks.task_completed(task)
            # Checked after commit: two annotators finishing the last two tasks at once each see the other's
            # task still open inside their transactions, but the later commit's check sees both done.
            if in_outer_transaction:
                _mark_labeled_if_done(batch_id)
            transaction.on_commit(lambda: _mark_labeled_if_done(batch_id))
            project_id = row["project_id"]
            transaction.on_commit(lambda: suggestions.note_answer(project_id))  # refit, debounced
        if row["batch_status"] == BatchStatus.FINALIZED:
            cursor.execute(
                "UPDATE labeling_batch SET status = %s WHERE id = %s AND status = %s",
                [BatchStatus.LABELING.value, batch_id, _FIRST_ANSWER_FROM],
            )
    return annotation, True


def advance_batch(batch_id: int) -> None:
    """Move a batch forward when answers arrive: finalized → labeling → labeled."""
    if not _mark_labeled_if_done(batch_id) and Annotation.objects.filter(task__batch_id=batch_id).exists():
        Batch.objects.filter(pk=batch_id).transition(BatchStatus.LABELING, among=(BatchStatus.FINALIZED,))


def _mark_labeled_if_done(batch_id: int) -> bool:
    """Mark the batch labeled when it has no open task left: one conditional UPDATE, so it is cheap on every answer."""
    with connection.cursor() as cursor:
        hotpath.execute(cursor, "winnow_batch_labeled", BATCH_LABELED, [timezone.now(), batch_id, batch_id])
        won = cursor.rowcount == 1
    if won:  # the conditional update is won once, so the event is sent once
        webhooks.batch_labeled(batch_id)
        if settings.WINNOW_LABEL_ERRORS:
            from . import label_errors

            transaction.on_commit(lambda: label_errors.schedule_refresh(batch_id=batch_id))  # score its answers
    return won


def undo_annotation(*, task: Task, annotator: AbstractBaseUser) -> Task:
    """Withdraw the annotator's own live answer to a task and lease the task back to them.

    Allowed while the answer is younger than the project's lease time (the lease it was given
    under would still be running) and the task is still open to answers: queued, or completed but
    not yet decided by the owner or an audit, in a batch that is not in audit. The answer is kept
    as discarded, the task re-queued and recomputed with `resolve_task`, a labeled batch goes back
    to labeling. Takes a row lock on the task. Refused (409, nothing changed) otherwise.
    """
    labeling_membership(task.project, annotator)
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("project", "batch").get(pk=task.pk)
        annotation = Annotation.objects.live().filter(task=task, annotator=annotator).first()
        if annotation is None:
            raise Conflict("you have no answer on this task to undo", code="nothing_to_undo")
        now = timezone.now()
        window = timedelta(seconds=task.project.lease_seconds)
        if annotation.created_at + window <= now:
            raise Conflict(
                f"answers can be undone for {task.project.lease_seconds} s after they are given; this one is older",
                code="undo_window_closed",
            )
        if task.status not in (TaskStatus.QUEUED, TaskStatus.COMPLETED) or task.decided_by in (
            DecidedBy.GOLD, DecidedBy.AUDIT
        ):
            raise Conflict(f"task is {task.status} and decided by {task.decided_by or 'nobody'}; it can no longer change",
                           code="task_closed")
        if task.batch.status not in (*LABELABLE_BATCH_STATUSES, BatchStatus.LABELED):
            raise Conflict(f"batch {task.batch.name!r} is {task.batch.status}; its answers can no longer be undone",
                           code="batch_closed")
        Annotation.objects.filter(pk=annotation.pk).update(discarded_at=now)
        Task.objects.filter(pk=task.pk).update(
            annotation_count=F("annotation_count") - 1, status=TaskStatus.QUEUED, completed_at=None
        )
        task.refresh_from_db(fields=["annotation_count", "status", "completed_at"])
        Lease.objects.update_or_create(
            task=task, annotator=annotator,
            defaults={"expires_at": now + window, "skipped_at": None},
        )
        Batch.objects.filter(pk=task.batch_id).transition(
            BatchStatus.LABELING, among=(BatchStatus.LABELED,), labeled_at=None
        )
        resolve_task(task=task)
        if task.status == TaskStatus.COMPLETED:  # the remaining answers still decide it
            advance_batch(task.batch_id)
    task.lease_expires_at = now + window  # type: ignore[attr-defined]
    return task


def submit_answers(*, project: Project, annotator: AbstractBaseUser, answers: list[Any]) -> list[dict[str, Any]]:
    """Record many answers at once (grid mode), each exactly as `submit_annotation` would.

    Every item is answered on its own, in its own transaction: created, duplicate (the same answer
    was already recorded: a retried request) or rejected with the reason and a stable code. One bad
    item never stops the others. Refused as a whole only when the list is empty or too long, or the
    annotator may not label in this project.
    """
    if not isinstance(answers, list) or not answers:
        raise InvalidInput('send a non-empty list: {"answers": [{"task": 1, "choice": 2, "duration_ms": 800}]}')
    if len(answers) > MAX_BULK_ANSWERS:
        raise InvalidInput(f"{len(answers)} answers in one request is over the limit of {MAX_BULK_ANSWERS}")
    labeling_membership(project, annotator)
    ids = [a.get("task") for a in answers if isinstance(a, dict) and isinstance(a.get("task"), int)]
    tasks = {t.pk: t for t in Task.objects.alive().filter(project=project, pk__in=ids).select_related("project")}
    results: list[dict[str, Any]] = []
    for i, item in enumerate(answers):
        problem = _answer_problem(item)
        if problem:
            results.append({"index": i, "task": item.get("task") if isinstance(item, dict) else None,
                            "status": "rejected", "code": "invalid", "detail": problem})
            continue
        task = tasks.get(item["task"])
        if task is None:
            results.append({"index": i, "task": item["task"], "status": "rejected", "code": "not_found",
                            "detail": f"task {item['task']} is not a task of this project"})
            continue
        try:
            annotation, created = submit_annotation(
                task=task, annotator=annotator, choice_id=item["choice"], duration_ms=item.get("duration_ms", 0),
                assisted=item.get("assisted", False),
            )
        except DomainError as exc:
            results.append({"index": i, "task": task.pk, "status": "rejected", "code": exc.code, "detail": exc.message})
            continue
        results.append({"index": i, "task": task.pk, "status": "created" if created else "duplicate",
                        "annotation": annotation.pk, "choice": annotation.choice_id})
    return results


def _answer_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "each answer must be an object with task, choice and duration_ms"
    for name in ("task", "choice"):
        if not isinstance(item.get(name), int) or isinstance(item.get(name), bool):
            return f"{name} must be an id (an integer)"
    duration = item.get("duration_ms", 0)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        return "duration_ms must be a whole number of milliseconds, 0 or more"
    if not isinstance(item.get("assisted", False), bool):
        return "assisted must be true or false"
    unknown = set(item) - {"task", "choice", "duration_ms", "assisted"}
    if unknown:
        return f"unknown field {sorted(unknown)[0]!r}; an answer has task, choice, duration_ms and assisted"
    return None




