"""Quality control that writes: gold, hidden gold copies, annotator pauses, audits and relabeling.

Each function takes keyword-only arguments and runs in one transaction. State transitions are
claimed with conditional UPDATEs (a batch audited → accepted only once; an audit pending → done only
once), so two reviewers or a retried request never double-count. The figures these decisions read
live in `reports.py`.
"""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from winnow.exceptions import Conflict, IllegalTransition, InvalidInput, NotFound

from . import webhooks
from .models import (
    Annotation,
    Audit,
    AuditVerdict,
    Batch,
    BatchKind,
    BatchStatus,
    Choice,
    DecidedBy,
    Lease,
    Membership,
    Project,
    Role,
    Task,
    TaskStatus,
)
from .reports import audit_plan, auditable_tasks, batch_quality, gold_scores


def set_gold(*, task: Task, choice_id: int) -> Task:
    """The owner confirms or corrects a calibration task's answer; the task becomes gold.

    Only calibration tasks that have answers can be made gold (409 otherwise). The confirmed choice
    becomes the task's final answer, decided by the owner.
    """
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("batch").get(pk=task.pk)
        choice = Choice.objects.filter(pk=choice_id, project_id=task.project_id).first()
        if choice is None:
            raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
        if task.batch.kind != BatchKind.CALIBRATION:
            raise Conflict("only calibration tasks become gold; production tasks are checked by audits")
        if task.status not in (TaskStatus.COMPLETED, TaskStatus.QUEUED) or task.annotation_count == 0:
            raise Conflict("this task has no answer yet; review it once it has been labeled")
        Task.objects.filter(pk=task.pk).update(
            is_gold=True, gold_choice=choice, final_choice=choice, decided_by=DecidedBy.GOLD
        )
        task.refresh_from_db()
        from . import suggestions

        project_id = task.project_id
        transaction.on_commit(lambda: suggestions.note_answer(project_id))  # new gold: refit, debounced
    return task


# Tasks of one batch are spread at least twice this far apart in time, so a gold copy fits between any two.
GOLD_OFFSET = timedelta(microseconds=1)


def _spread_in_upload_order(batch: Batch) -> list[datetime]:
    """The batch's non-gold tasks' created_at in lease order, ties re-stamped so that each request's
    tasks are 2 × GOLD_OFFSET apart.

    Tasks that arrived in one request share a timestamp (a URL upload is one COPY with one
    created_at), and a copy stamped with that time would sort after the whole group: all the gold at
    the end of the queue. Only ties move, by microseconds, and the order is kept: one UPDATE spreads
    each group of equal timestamps by its rank (groups are requests, far apart).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE labeling_task t SET created_at = s.spread FROM ("
            " SELECT id, created_at + (row_number() OVER (PARTITION BY created_at ORDER BY id) - 1) * %s AS spread"
            " FROM labeling_task WHERE batch_id = %s AND NOT is_gold AND deleted_at IS NULL"
            ") s WHERE t.id = s.id AND s.spread <> t.created_at",
            [2 * GOLD_OFFSET, batch.pk],
        )
    regular = batch.tasks.alive().filter(is_gold=False)
    return list(regular.order_by("created_at", "id").values_list("created_at", flat=True))


def mix_gold(*, batch: Batch) -> int:
    """Copy gold tasks into a production batch at the project's gold rate, spread among its tasks.

    Copies point at their calibration task (`gold_source`) and share its image; each goes right after
    a task drawn at random, so gold is spread through the queue and annotators cannot tell it apart.
    Returns how many were added.
    """
    project = batch.project
    if batch.kind != BatchKind.PRODUCTION or project.gold_rate <= 0:
        return 0
    gold = list(
        Task.objects.alive()
        .filter(project=project, is_gold=True, gold_source__isnull=True, asset__isnull=False)
        .only("id", "asset_id", "gold_choice_id", "source_name", "metadata")
    )
    if not gold:
        return 0
    order = _spread_in_upload_order(batch)
    if not order:
        return 0
    count = min(len(gold), max(1, round(project.gold_rate * len(order))))
    rng = random.Random(secrets.randbits(64))
    # Ids, not related objects: `source.asset` would cost a query per copy.
    copies = [
        Task(
            project=project, batch=batch, asset_id=source.asset_id, is_gold=True, gold_choice_id=source.gold_choice_id,
            gold_source_id=source.pk, source_name=source.source_name, metadata=source.metadata,
            status=TaskStatus.QUEUED,
        )
        for source in rng.sample(gold, count)
    ]
    Task.objects.bulk_create(copies)
    # created_at is auto_now_add, so the insert stamped every copy "now": place each right after a task
    # drawn at random (leasing takes a batch in (created_at, id) order), in one UPDATE.
    for task in copies:
        task.created_at = order[rng.randrange(len(order))] + GOLD_OFFSET
    Task.objects.bulk_update(copies, ["created_at"], batch_size=1000)
    return count


def check_annotator(*, project: Project, annotator: AbstractBaseUser) -> bool:
    """Pause an annotator whose gold accuracy fell under the project's threshold, once they have
    answered at least `min_gold_answers` gold tasks. Returns True when this call paused them.

    After a reinstatement only the gold answers given since count, so the annotator gets a fresh
    `min_gold_answers` before the rule can pause them again.
    """
    since = (
        Membership.objects.filter(project=project, user=annotator).values_list("gold_scored_since", flat=True).first()
    )
    score = gold_scores(project=project, annotator=annotator, since=since).get(annotator.pk)
    if score is None or score["gold_answers"] < project.min_gold_answers:
        return False
    if score["accuracy"] >= project.min_gold_accuracy:
        return False
    reason = (
        f"gold accuracy {score['accuracy']:.0%} over {score['gold_answers']} gold tasks is under the project's "
        f"{project.min_gold_accuracy:.0%}; the owner can reinstate you"
    )
    paused = Membership.objects.filter(project=project, user=annotator, paused_at__isnull=True).update(
        paused_at=timezone.now(), paused_reason=reason
    )
    if paused:
        Lease.objects.filter(task__project=project, annotator=annotator).delete()
    return bool(paused)


def reinstate(*, project: Project, username: str) -> Membership:
    """Let a paused annotator label again; the pause rule restarts from their next gold answer."""
    membership = Membership.objects.filter(project=project, user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project")
    Membership.objects.filter(pk=membership.pk).update(
        paused_at=None, paused_reason="", gold_scored_since=timezone.now()
    )
    membership.refresh_from_db()
    return membership


def pause_annotator(*, project: Project, username: str, reason: str = "") -> Membership:
    """The owner pauses a member by hand: they get no tasks and their leases are released until an
    owner reinstates them. Owners are not paused (409): change their role first."""
    membership = Membership.objects.filter(project=project, user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project")
    if membership.role == Role.OWNER:
        raise Conflict("owners are not paused; make them an annotator or reviewer first", code="owner_not_paused")
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk, paused_at__isnull=True).update(
            paused_at=timezone.now(), paused_reason=reason or "paused by the project's owner"
        )
        Lease.objects.filter(task__project=project, annotator_id=membership.user_id).delete()
    membership.refresh_from_db()
    return membership


def relabel_annotator(*, project: Project, username: str) -> int:
    """Send an annotator's answers back: discard them (kept for the record) on tasks of batches not
    yet accepted, put those tasks back in the queue and recompute their answers. Returns the count."""
    membership = Membership.objects.filter(project=project, user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project")
    open_batches = Batch.objects.alive().filter(project=project).exclude(status=BatchStatus.ACCEPTED)
    with transaction.atomic():
        task_ids = list(
            Annotation.objects.live()
            .filter(annotator_id=membership.user_id, task__batch__in=open_batches, task__is_gold=False)
            .values_list("task_id", flat=True)
        )
        _discard_and_requeue(task_ids, annotator_id=membership.user_id)
    return len(task_ids)


def relabel_task(*, task: Task) -> Task:
    """Send one task back for relabeling: discard its live answers (kept for the record), queue it again
    and recompute. Refused (409) for gold tasks, tasks without answers and tasks of accepted batches."""
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("batch").get(pk=task.pk)
        if task.is_gold:
            raise Conflict("a gold task's answer is the owner's; it is not sent back", code="gold_task")
        if task.batch.status == BatchStatus.ACCEPTED:
            raise Conflict("its batch is accepted; its answers are final", code="batch_accepted")
        if task.annotation_count == 0:
            raise Conflict(f"the task is {task.status} with no answers; nothing to send back", code="no_answers")
        _discard_and_requeue([task.pk])
    task.refresh_from_db()
    return task


def _discard_and_requeue(task_ids: list[int], *, annotator_id: int | None = None) -> None:
    """Discard live answers (all, or one annotator's) on these tasks and put them back in the queue."""
    from .consensus import resolve_task

    if not task_ids:
        return
    answers = Annotation.objects.live().filter(task_id__in=task_ids)
    if annotator_id is not None:
        answers = answers.filter(annotator_id=annotator_id)
    answers.update(discarded_at=timezone.now())
    tasks = Task.objects.select_for_update().select_related("project").filter(pk__in=task_ids).order_by("id")
    batch_ids = set()
    for task in tasks:
        live = Annotation.objects.live().filter(task=task).count()
        Task.objects.filter(pk=task.pk).update(
            annotation_count=live, extra_answers=0, status=TaskStatus.QUEUED, completed_at=None
        )
        task.annotation_count, task.extra_answers, task.status = live, 0, TaskStatus.QUEUED
        resolve_task(task=task)
        batch_ids.add(task.batch_id)
    # An audit under way is abandoned too: its sample judged answers that are gone, so the batch is
    # audited afresh (a new round) once it is labeled again.
    Batch.objects.filter(
        pk__in=batch_ids
    ).transition(BatchStatus.LABELING, among=(BatchStatus.LABELED, BatchStatus.AUDITED, BatchStatus.REJECTED),
                 labeled_at=None, decided_at=None)


def draw_audit_sample(*, batch: Batch, size: int | None = None, width: float | None = None,
                      seed: int | None = None) -> tuple[Batch, list[Audit]]:
    """Draw a stratified random sample of a labeled production batch for reviewers (labeled → audited).

    The seed is stored with the plan, so the same sample can be drawn again to check it.
    """
    if batch.kind != BatchKind.PRODUCTION:
        raise Conflict("calibration batches are reviewed by the owner, not audited")
    plan = audit_plan(batch=batch, size=size, width=width)
    if plan["size"] == 0:
        raise Conflict("the batch has no answered tasks to audit")
    seed = seed if seed is not None else secrets.randbits(48)
    with transaction.atomic():
        won = Batch.objects.filter(pk=batch.pk).transition(
            BatchStatus.AUDITED, audit_round=F("audit_round") + 1, audit_seed=seed, audit_plan=plan
        )
        batch.refresh_from_db()
        if not won:
            raise IllegalTransition(f"batch is {batch.status}; an audit is drawn once the batch is labeled")
        rng = random.Random(seed)
        audits = []
        for label, k in sorted(plan["strata"].items()):
            ids = sorted(auditable_tasks(batch).filter(final_choice__label=label).values_list("id", "final_choice_id"))
            for task_id, choice_id in rng.sample(ids, k):
                audits.append(Audit(batch=batch, task_id=task_id, round=batch.audit_round, stratum=label, answer_id=choice_id))
        Audit.objects.bulk_create(audits)
    return batch, audits


def reviewed_choice(*, task: Task, correct: bool, choice_id: int | None,
                    answer_id: int | None) -> tuple[bool, Choice | None]:
    """A reviewer's verdict on the answer `answer_id` as (correct, the right choice when it is not): 400 for a
    correction that names no choice or another project's. "Wrong, the right answer is the same one" is a
    confirmation. Used by the random audit and the likely-errors queue."""
    if correct:
        return True, None
    if choice_id is None:
        raise InvalidInput("say which choice is right: {\"correct\": false, \"choice\": <id>}")
    corrected = Choice.objects.filter(pk=choice_id, project_id=task.project_id).first()
    if corrected is None:
        raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
    if corrected.pk == answer_id:
        return True, None
    return False, corrected


def submit_audit(*, task: Task, reviewer: AbstractBaseUser, correct: bool, choice_id: int | None) -> Audit:
    """Record a reviewer's verdict on a sampled task, and decide the batch when the sample is done.

    The audit is claimed by a conditional update on `verdict = pending`, so two reviewers marking the
    same task at once count once (the second gets 409). A correction overrides the task's answer.
    Reviewers may not audit a task they answered themselves.
    """
    audit = (
        Audit.objects.select_related("batch", "batch__project")
        .filter(task=task, round=F("batch__audit_round"), batch__status=BatchStatus.AUDITED)
        .first()
    )
    if audit is None:
        raise Conflict("this task is not in an open audit sample", code="not_sampled")
    correct, corrected = reviewed_choice(task=task, correct=correct, choice_id=choice_id, answer_id=audit.answer_id)
    if Annotation.objects.live().filter(task=task, annotator=reviewer).exists():
        raise Conflict("you answered this task yourself; another reviewer must audit it", code="own_answer")
    with transaction.atomic():
        won = Audit.objects.filter(pk=audit.pk, verdict=AuditVerdict.PENDING).update(
            verdict=AuditVerdict.CORRECT if correct else AuditVerdict.INCORRECT,
            corrected_choice=corrected, reviewer=reviewer, reviewed_at=timezone.now(),
        )
        if not won:
            raise Conflict("this task was already audited", code="already_audited")
        if corrected is not None:
            override_answer(task_id=task.pk, choice=corrected)
        batch_id, round_ = audit.batch_id, audit.round
        _decide_if_done(batch_id, round_)
        # Again after commit: two reviewers finishing the last two audits at once each see the other's
        # audit still pending until both commit, and neither would decide the batch.
        transaction.on_commit(lambda: _decide_if_done(batch_id, round_))
    audit.refresh_from_db()
    return audit


def override_answer(*, task_id: int, choice: Choice) -> None:
    """A reviewer's correction becomes the task's answer, decided by review (`DecidedBy.AUDIT`): it outranks
    the votes now and after relabeling (consensus.resolve_task). The one path of both the random audit's
    corrections and the likely-errors queue's (label_errors.submit_review); runs in the caller's transaction."""
    Task.objects.filter(pk=task_id).update(final_choice=choice, decided_by=DecidedBy.AUDIT)


def _decide_if_done(batch_id: int, round_: int) -> None:
    """Decide the batch once no audit of this round is pending (harmless to call twice)."""
    if Audit.objects.filter(batch_id=batch_id, round=round_, verdict=AuditVerdict.PENDING).exists():
        return
    batch = Batch.objects.select_related("project").get(pk=batch_id)
    if batch.status == BatchStatus.AUDITED and batch.audit_round == round_:
        _decide(batch)


def _decide(batch: Batch) -> None:
    figures = batch_quality(batch=batch)
    accept = figures["wilson"][1] <= batch.project.max_error_rate
    if Batch.objects.filter(pk=batch.pk).transition(
        BatchStatus.ACCEPTED if accept else BatchStatus.REJECTED, decided_at=timezone.now()
    ):
        webhooks.batch_audited(batch)


def relabel_batch(*, batch: Batch, scope: str) -> int:
    """Send a rejected batch back to annotators: every task (`all`) or only the tasks whose answer is a
    choice the audit found wrong (`failed`). Audit-corrected tasks keep their correction. Returns how
    many tasks went back to the queue."""
    if scope not in ("all", "failed"):
        raise InvalidInput("scope must be 'all' or 'failed'")
    if batch.status != BatchStatus.REJECTED:
        raise IllegalTransition(f"batch is {batch.status}; only a rejected batch is sent back for relabeling")
    tasks = batch.tasks.alive().filter(is_gold=False, status=TaskStatus.COMPLETED).exclude(decided_by=DecidedBy.AUDIT)
    if scope == "failed":
        failed = Audit.objects.filter(batch=batch, round=batch.audit_round, verdict=AuditVerdict.INCORRECT).values("answer_id")
        tasks = tasks.filter(final_choice__in=failed)
    with transaction.atomic():
        ids = list(tasks.values_list("id", flat=True))
        _discard_and_requeue(ids)
    return len(ids)
