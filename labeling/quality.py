"""Quality control workflows: calibration review and gold, annotator scores, audits and relabeling.

Each function takes keyword-only arguments and runs in one transaction. State transitions are
claimed with conditional UPDATEs (a batch audited → accepted only once; an audit pending → done only
once), so two reviewers or a retried request never double-count.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from . import stats, webhooks
from .exceptions import Conflict, IllegalTransition, InvalidInput, NotFound
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

RECENT_GOLD = 20  # "recent" gold accuracy looks at an annotator's last this-many gold answers
LOW_AGREEMENT = 2 / 3  # consensus at or under this share of annotators is flagged
# Annotators see their gold accuracy in whole blocks of this many gold answers. Were it exact, an
# annotator checking it after each answer would learn which tasks were gold, and the right answers
# to the gold copies that come back in later batches.
GOLD_FEEDBACK_BLOCK = 10


# --- calibration and gold ---------------------------------------------------------------------


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
    return task


def calibration_report(*, project: Project) -> dict[str, Any]:
    """Accuracy of the calibration answers against the owner's gold: overall, per choice, per
    annotator, a confusion matrix (rows: gold, columns: answer) and the median time per task."""
    labels = list(project.choices.values_list("label", flat=True))
    names = dict(project.choices.values_list("id", "label"))
    calibration = Task.objects.alive().filter(project=project, batch__kind=BatchKind.CALIBRATION)
    rows = list(
        Annotation.objects.live()
        .filter(task__in=calibration, task__is_gold=True)
        .values_list("annotator__username", "choice_id", "task__gold_choice_id", "duration_ms")
    )
    pairs = [(names[gold], names[given]) for _, given, gold, _ in rows]
    per_choice = stats.group_accuracy((names[gold], given == gold) for _, given, gold, _ in rows)
    per_annotator = stats.group_accuracy((user, given == gold) for user, given, gold, _ in rows)
    correct = sum(1 for _, given, gold, _ in rows if given == gold)
    return {
        "tasks": calibration.count(),
        "reviewed": calibration.filter(is_gold=True).count(),
        "answers": len(rows),
        "accuracy": correct / len(rows) if rows else None,
        "per_choice": {k: {"correct": c, "total": n, "accuracy": c / n} for k, (c, n) in per_choice.items()},
        "per_annotator": {k: {"correct": c, "total": n, "accuracy": c / n} for k, (c, n) in per_annotator.items()},
        "labels": labels,
        "confusion": stats.confusion_matrix(pairs, labels),
        "median_duration_ms": stats.median(d for *_, d in rows),
        "approved": project.calibration_approved,
    }


# Tasks of one batch are spread at least twice this far apart in time, so a gold copy fits between any two.
GOLD_OFFSET = timedelta(microseconds=1)


def _spread_in_upload_order(batch: Batch, *, in_database: bool | None = None) -> list[datetime]:
    """The batch's non-gold tasks' created_at in lease order, re-stamped where needed so that each is
    at least 2 × GOLD_OFFSET after the one before.

    Tasks that arrived in one request share a timestamp (a URL upload is one COPY with one
    created_at), and a copy stamped with that time would sort after the whole group: all the gold at
    the end of the queue. Only ties (and elsewhere than PostgreSQL near-ties) move, by microseconds,
    and the order is kept. `in_database` (default: on PostgreSQL) re-stamps with one SQL UPDATE.
    """
    regular = batch.tasks.alive().filter(is_gold=False)
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    if in_database:
        # One UPDATE: each group of equal timestamps spread by its rank (groups are requests, far apart).
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE labeling_task t SET created_at = s.spread FROM ("
                " SELECT id, created_at + (row_number() OVER (PARTITION BY created_at ORDER BY id) - 1) * %s AS spread"
                " FROM labeling_task WHERE batch_id = %s AND NOT is_gold AND deleted_at IS NULL"
                ") s WHERE t.id = s.id AND s.spread <> t.created_at",
                [2 * GOLD_OFFSET, batch.pk],
            )
        return list(regular.order_by("created_at", "id").values_list("created_at", flat=True))
    rows = list(regular.order_by("created_at", "id").values_list("id", "created_at"))
    order: list[datetime] = []
    moved: list[Task] = []
    for task_id, created_at in rows:
        if order and created_at < order[-1] + 2 * GOLD_OFFSET:
            created_at = order[-1] + 2 * GOLD_OFFSET
            moved.append(Task(pk=task_id, created_at=created_at))
        order.append(created_at)
    if moved:
        Task.objects.bulk_update(moved, ["created_at"], batch_size=2000)
    return order


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


# --- annotator scores -------------------------------------------------------------------------


def gold_scores(
    *, project: Project, annotator: AbstractBaseUser | None = None, since: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """Per annotator id: gold answers, correct ones, accuracy overall and over the last RECENT_GOLD
    (only answers given after `since`, when set)."""
    rows = (
        Annotation.objects.filter(task__project=project, task__is_gold=True)
        .filter(Q(discarded_at__isnull=True))
        .order_by("annotator_id", "-created_at")
        .values_list("annotator_id", "choice_id", "task__gold_choice_id")
    )
    if annotator is not None:
        rows = rows.filter(annotator=annotator)
    if since is not None:
        rows = rows.filter(created_at__gt=since)
    by_user: dict[int, list[bool]] = defaultdict(list)
    for user_id, given, gold in rows:
        by_user[user_id].append(given == gold)
    scores = {}
    for user_id, results in by_user.items():
        recent = results[:RECENT_GOLD]
        scores[user_id] = {
            "gold_answers": len(results),
            "gold_correct": sum(results),
            "accuracy": sum(results) / len(results),
            "recent_accuracy": sum(recent) / len(recent),
        }
    return scores


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


def annotator_table(*, project: Project) -> list[dict[str, Any]]:
    """Every annotating member with answers, gold accuracy (overall and recent), median time, paused flag."""
    scores = gold_scores(project=project)
    answers = dict(
        Annotation.objects.live().filter(task__project=project).values_list("annotator_id").annotate(n=Count("id"))
    )
    durations: dict[int, list[int]] = defaultdict(list)
    for user_id, duration in (
        Annotation.objects.live().filter(task__project=project).values_list("annotator_id", "duration_ms")[:200_000]
    ):
        durations[user_id].append(duration)
    table = []
    for m in project.memberships.select_related("user").order_by("user__username"):
        score = scores.get(m.user_id, {})
        table.append(
            {
                "username": m.user.username,
                "role": m.role,
                "answers": answers.get(m.user_id, 0),
                "gold_answers": score.get("gold_answers", 0),
                "gold_correct": score.get("gold_correct", 0),
                "gold_accuracy": score.get("accuracy"),
                "recent_gold_accuracy": score.get("recent_accuracy"),
                "median_duration_ms": stats.median(durations.get(m.user_id, [])),
                "paused": m.paused_at is not None,
                "paused_reason": m.paused_reason,
                "gold_scored_since": m.gold_scored_since,
                "flagged": m.paused_at is not None,
            }
        )
    return table


def shown_gold_accuracy(*, project: Project, annotator: AbstractBaseUser) -> dict[str, Any] | None:
    """An annotator's own gold accuracy as they may see it: over their oldest gold answers in whole
    blocks of GOLD_FEEDBACK_BLOCK, so a change never points at one answer. None before the first block.
    `recent` covers the last two blocks shown."""
    results = [
        given == gold
        for given, gold in Annotation.objects.live()
        .filter(task__project=project, task__is_gold=True, annotator=annotator)
        .order_by("created_at", "id")
        .values_list("choice_id", "task__gold_choice_id")
    ]
    shown = len(results) - len(results) % GOLD_FEEDBACK_BLOCK
    if shown == 0:
        return None
    counted, recent = results[:shown], results[max(0, shown - 2 * GOLD_FEEDBACK_BLOCK):shown]
    return {"overall": sum(counted) / shown, "recent": sum(recent) / len(recent), "answers": shown,
            "correct": sum(counted)}


def my_standing(*, project: Project, membership: Membership) -> dict[str, Any]:
    """What an annotator may know of their own quality: whether they are paused and why, and their
    gold accuracy in blocks (see `shown_gold_accuracy`); never anything that tells a task was gold."""
    return {
        "username": membership.user.username,
        "role": membership.role,
        "paused": membership.paused_at is not None,
        "paused_reason": membership.paused_reason,
        "gold_accuracy": shown_gold_accuracy(project=project, annotator=membership.user),
        "gold_feedback_block": GOLD_FEEDBACK_BLOCK,
        "scored_since": membership.gold_scored_since,
        "min_gold_accuracy": project.min_gold_accuracy,
        "min_gold_answers": project.min_gold_answers,
    }


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
    from .services import resolve_task

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
        pk__in=batch_ids, status__in=[BatchStatus.LABELED, BatchStatus.AUDITED, BatchStatus.REJECTED]
    ).update(status=BatchStatus.LABELING, labeled_at=None, decided_at=None)


# --- audits -----------------------------------------------------------------------------------


def _auditable(batch: Batch) -> Any:
    # Gold copies are checked against the owner's answer already; audit what annotators decided.
    return batch.tasks.alive().filter(status=TaskStatus.COMPLETED, is_gold=False, final_choice__isnull=False)


def audit_plan(*, batch: Batch, size: int | None = None, width: float | None = None,
               expected_error_rate: float = 0.01) -> dict[str, Any]:
    """What an audit would look like: how many tasks, split by answer, and what that can prove."""
    project = batch.project
    available = dict(
        _auditable(batch).values_list("final_choice__label").annotate(n=Count("id")).order_by()
    )
    total = sum(available.values())
    if size is not None and width is not None:
        raise InvalidInput("give either size or width, not both")
    if width is not None:
        wanted = stats.sample_size_for_width(expected_error_rate, width)
    else:
        wanted = size or project.audit_sample_size
    if wanted < 1:
        raise InvalidInput("the sample size must be at least 1")
    n = min(wanted, total)
    clean = stats.clean_audits_needed(project.max_error_rate)
    lo, hi = stats.wilson(0, n)
    return {
        "requested": wanted,
        "size": n,
        "population": total,
        "strata": stats.stratified_allocation(available, n),
        "max_error_rate": project.max_error_rate,
        "clean_audits_needed": clean,
        "upper_bound_if_clean": hi,
        "can_accept": hi <= project.max_error_rate,
        "explanation": (
            f"{clean} audits with no error are needed to show an error rate under {project.max_error_rate:.1%} "
            f"(Wilson 95% upper bound); this sample of {n} caps the upper bound at {hi:.2%} if it is clean."
        ),
    }


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
        won = Batch.objects.filter(pk=batch.pk, status=BatchStatus.LABELED).update(
            status=BatchStatus.AUDITED, audit_round=F("audit_round") + 1, audit_seed=seed, audit_plan=plan
        )
        batch.refresh_from_db()
        if not won:
            raise IllegalTransition(f"batch is {batch.status}; an audit is drawn once the batch is labeled")
        rng = random.Random(seed)
        audits = []
        for label, k in sorted(plan["strata"].items()):
            ids = sorted(_auditable(batch).filter(final_choice__label=label).values_list("id", "final_choice_id"))
            for task_id, choice_id in rng.sample(ids, k):
                audits.append(Audit(batch=batch, task_id=task_id, round=batch.audit_round, stratum=label, answer_id=choice_id))
        Audit.objects.bulk_create(audits)
    return batch, audits


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
    corrected: Choice | None = None
    if not correct:
        if choice_id is None:
            raise InvalidInput("say which choice is right: {\"correct\": false, \"choice\": <id>}")
        corrected = Choice.objects.filter(pk=choice_id, project_id=task.project_id).first()
        if corrected is None:
            raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
        if corrected.pk == audit.answer_id:
            correct, corrected = True, None  # "wrong, the right answer is the same one" is a confirmation
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
            Task.objects.filter(pk=task.pk).update(final_choice=corrected, decided_by=DecidedBy.AUDIT)
        batch_id, round_ = audit.batch_id, audit.round
        _decide_if_done(batch_id, round_)
        # Again after commit: two reviewers finishing the last two audits at once each see the other's
        # audit still pending until both commit, and neither would decide the batch.
        transaction.on_commit(lambda: _decide_if_done(batch_id, round_))
    audit.refresh_from_db()
    return audit


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
    if Batch.objects.filter(pk=batch.pk, status=BatchStatus.AUDITED).update(
        status=BatchStatus.ACCEPTED if accept else BatchStatus.REJECTED, decided_at=timezone.now()
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


def batch_quality(*, batch: Batch) -> dict[str, Any]:
    """The figures owners quote: audited, errors, error rate with Wilson and Clopper–Pearson 95%
    intervals, the decision, per-choice figures, consensus agreement and gold accuracy."""
    audits = list(
        Audit.objects.filter(batch=batch, round=batch.audit_round)
        .exclude(verdict=AuditVerdict.PENDING)
        .values_list("answer__label", "verdict")
    )
    pending = Audit.objects.filter(batch=batch, round=batch.audit_round, verdict=AuditVerdict.PENDING).count()
    n = len(audits)
    errors = sum(1 for _, v in audits if v == AuditVerdict.INCORRECT)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for label, verdict in audits:
        per[label][verdict] += 1
    per_choice = {}
    for label, counter in sorted(per.items()):
        k, m = counter[AuditVerdict.INCORRECT], sum(counter.values())
        per_choice[label] = {"audited": m, "errors": k, "error_rate": k / m, "wilson": list(stats.wilson(k, m))}
    agreements = list(
        batch.tasks.alive().filter(status=TaskStatus.COMPLETED, is_gold=False, agreement__isnull=False)
        .values_list("agreement", flat=True)
    )
    gold = list(
        Annotation.objects.live().filter(task__batch=batch, task__is_gold=True)
        .values_list("choice_id", "task__gold_choice_id")
    )
    decision = {BatchStatus.ACCEPTED: "accepted", BatchStatus.REJECTED: "rejected"}.get(batch.status, "pending")
    return {
        "batch": batch.pk,
        "status": batch.status,
        "round": batch.audit_round,
        "seed": batch.audit_seed,
        "plan": batch.audit_plan,
        "audited": n,
        "pending": pending,
        "errors": errors,
        "error_rate": errors / n if n else None,
        "wilson": list(stats.wilson(errors, n)),
        "clopper_pearson": list(stats.clopper_pearson(errors, n)),
        "max_error_rate": batch.project.max_error_rate,
        "decision": decision,
        "per_choice": per_choice,
        "consensus": {
            "tasks": len(agreements),
            "mean_agreement": sum(agreements) / len(agreements) if agreements else None,
            "low_agreement": sum(1 for a in agreements if a <= LOW_AGREEMENT and a < 1),
        },
        "gold": {"answers": len(gold), "correct": sum(1 for g, e in gold if g == e)},
        "summary": f"{errors} error{'s' if errors != 1 else ''} in {n} audited" if n else "not audited yet",
    }


def consensus_estimates(*, batch: Batch) -> dict[str, Any]:
    """Dawid–Skene estimates for a batch's tasks (useful with overlap ≥ 3), beside the majority answer.

    Annotators are weighed by confusion matrices estimated over the whole project's answers, so a
    reliable annotator outvotes two careless ones. Tasks where the two disagree, or where the
    estimate is unsure, are flagged for a look.
    """
    names = dict(batch.project.choices.values_list("id", "label"))
    triples = list(
        Annotation.objects.live().filter(task__project=batch.project).values_list("task_id", "annotator_id", "choice_id")
    )
    if not triples:
        return {"tasks": [], "flagged": 0}
    estimate = stats.dawid_skene(triples)
    rows = []
    for task_id, final_choice_id, agreement in (
        batch.tasks.alive().filter(annotation_count__gt=0).values_list("id", "final_choice_id", "agreement").order_by("id")
    ):
        if task_id not in estimate.posteriors:
            continue
        ds = estimate.answer(task_id)
        confidence = estimate.confidence(task_id)
        flagged = ds != final_choice_id or confidence < 0.9 or (agreement is not None and agreement <= LOW_AGREEMENT)
        rows.append(
            {
                "task": task_id,
                "majority": names.get(final_choice_id),
                "agreement": agreement,
                "dawid_skene": names.get(ds),
                "confidence": confidence,
                "flagged": flagged,
            }
        )
    return {"tasks": rows, "flagged": sum(r["flagged"] for r in rows), "iterations": estimate.iterations}


def pending_audits(*, project: Project, reviewer: AbstractBaseUser, limit: int = 20) -> list[Audit]:
    """Open audits a reviewer may take: current round, not answered by them, oldest first."""
    return list(
        Audit.objects.select_related("task", "task__asset", "answer", "batch")
        .filter(batch__project=project, batch__status=BatchStatus.AUDITED, round=F("batch__audit_round"),
                verdict=AuditVerdict.PENDING)
        .exclude(Exists(Annotation.objects.live().filter(task=OuterRef("task"), annotator=reviewer)))
        .order_by("id")[:limit]
    )

