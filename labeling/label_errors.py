"""Likely label errors: a check gives every answered task a label quality score, and reviewers see the lowest first.

A check (`LabelCheck`, a `BackgroundJob`) reads the project's answered tasks and their images' embeddings
(labeling/features.py), has `confident.check_labels` compute out-of-sample probabilities with the
suggestion model's classifier (`suggestions.make_classifier`) and score the answers with cleanlab, and
stores a score per task (`LabelQuality`), each annotator's quality (`AnnotatorQuality`) and the estimated
number of wrong answers per batch. Trusted labels (gold, a review's correction, an answer a reviewer
confirmed here or in an audit) are learned from and never scored.

A check runs for a project (every batch) or one batch; it is queued when a batch becomes labeled and after a
correction from the queue (WINNOW_LABEL_ERRORS, debounced by WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS), and on
an owner's request. A score is for the answer it judged: a task whose answer changed since shows as stale
and leaves the queue until the next check.

The likely-errors queue is not the audit. The audit's sample stays random, so its error rate and interval
stay unbiased estimates for the batch; the queue picks the tasks most likely wrong, so its verdicts
(`ErrorReview`) never enter those figures. A correction from the queue overrides the task's answer through
the audit's own path (`quality.override_answer`). docs/LABEL_ERRORS.md has the method and the settings.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from winnow import jobs as background
from winnow.exceptions import Conflict, InvalidInput

from . import confident, features, quality, reports, suggestions
from .models import (
    Annotation,
    AnnotatorQuality,
    Audit,
    AuditVerdict,
    Batch,
    BatchKind,
    DecidedBy,
    Embedding,
    ErrorReview,
    LabelCheck,
    LabelCheckStatus,
    LabelQuality,
    Project,
    ReviewVerdict,
    Task,
    TaskStatus,
)

QUEUE_PAGE = 20


# --- queueing ---------------------------------------------------------------------------------


def schedule_check(*, project: Project, batch: Batch | None = None, requested_by: AbstractBaseUser | None = None,
                   countdown: float = 0) -> tuple[LabelCheck, bool]:
    """Queue a check of the project (or of one batch), unless one of the same scope is queued already: then
    that one is returned. (check, created). Sent to a worker once the caller's transaction commits."""
    if batch is not None and batch.project_id != project.pk:
        raise InvalidInput(f"batch {batch.pk} is not one of this project's batches")
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).values_list("id").first()
        queued = LabelCheck.objects.filter(project=project, batch=batch, status=LabelCheckStatus.QUEUED).first()
        if queued is not None:
            return queued, False
        check = LabelCheck.objects.create(project=project, batch=batch, requested_by=requested_by)
        transaction.on_commit(lambda: _enqueue(check.pk, countdown))
    return check, True


def schedule_refresh(*, batch_id: int) -> None:
    """Answers of a production batch changed (it became labeled, or a review corrected one): check it again
    after the debounce, where checks are on (WINNOW_LABEL_ERRORS) and the project has embeddings. (A calibration
    batch is reviewed answer by answer by its owner; an owner may still check one by hand.)"""
    if not settings.WINNOW_LABEL_ERRORS:
        return
    batch = Batch.objects.alive().select_related("project").filter(pk=batch_id, kind=BatchKind.PRODUCTION).first()
    if batch is None or not Embedding.objects.filter(project_id=batch.project_id).exists():
        return
    schedule_check(project=batch.project, batch=batch, countdown=settings.WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS)


def _enqueue(check_id: int, countdown: float = 0) -> None:
    from . import jobs

    jobs.check_labels.apply_async((check_id,), countdown=countdown)


def requeue_stalled() -> list[int]:
    """Queue again the checks whose worker stopped beating; every worker's sweep runs this."""
    return background.recover_stale(LabelCheck, _enqueue)


# --- the job ----------------------------------------------------------------------------------


def run_check(*, check_id: int) -> None:
    """Score the answers of the check's project (or batch) and store the scores, replacing the scope's old ones.

    A background job: claimed by a conditional update (a redelivered message does nothing while its worker
    lives), beating while it works, failed with the reason when it raises (no embeddings yet, too few labels
    of a choice), which the check's row and the API then show."""
    if not LabelCheck.objects.claim(check_id, steps_done=0):
        return
    check = LabelCheck.objects.select_related("project", "batch").get(pk=check_id)
    background.run_claimed(background.JobBeat(LabelCheck, check_id), lambda: _run(check))


def _step(check: LabelCheck, done: int, **figures: Any) -> None:
    LabelCheck.objects.filter(pk=check.pk).update(steps_done=done, **figures)


def labeled_rows(project_id: int) -> list[dict[str, Any]]:
    """The project's answered tasks with an image: id, batch, asset, answer, and whether the answer is trusted
    (gold, decided by a review, or confirmed by a reviewer in an audit or in the likely-errors queue)."""
    confirmed_here = ErrorReview.objects.filter(task=OuterRef("pk"), answer=OuterRef("final_choice"),
                                                verdict=ReviewVerdict.CORRECT)
    confirmed_audit = Audit.objects.filter(task=OuterRef("pk"), answer=OuterRef("final_choice"),
                                           verdict=AuditVerdict.CORRECT)
    rows = (Task.objects.alive()
            .filter(project_id=project_id, status=TaskStatus.COMPLETED, final_choice__isnull=False, asset__isnull=False)
            .annotate(confirmed=Exists(confirmed_here) | Exists(confirmed_audit))
            .order_by("id")
            .values("id", "batch_id", "asset_id", "final_choice_id", "is_gold", "decided_by", "confirmed"))
    out = []
    for row in rows:
        row["trusted"] = bool(row["is_gold"] or row["decided_by"] in (DecidedBy.GOLD, DecidedBy.AUDIT) or row["confirmed"])
        out.append(row)
    return out


def _run(check: LabelCheck) -> None:
    project = check.project
    rows = labeled_rows(project.pk)
    if not rows:
        raise InvalidInput("the project has no answered task with an image yet; check again once a batch is labeled")
    ids, matrix = features.embedding_matrix(project.pk, sorted({r["asset_id"] for r in rows}))
    if not ids:
        raise InvalidInput("the project's images have no embeddings yet: compute embeddings on the Batches page "
                           "(model assistance), then check again")
    row_of_asset = {a: i for i, a in enumerate(ids)}
    kept, seen_trusted = [], set()
    for row in rows:
        if row["asset_id"] not in row_of_asset:
            continue
        if row["trusted"]:  # a gold copy shares its image and answer with its calibration task: learn it once
            if row["asset_id"] in seen_trusted:
                continue
            seen_trusted.add(row["asset_id"])
        kept.append(row)
    not_embedded = sum(1 for r in rows if r["asset_id"] not in row_of_asset)
    trusted = np.array([r["trusted"] for r in kept], dtype=bool)
    version = Embedding.objects.filter(project_id=project.pk).values_list("version", flat=True).first()
    _step(check, 1, labeled=len(kept), trusted=int(trusted.sum()), not_embedded=not_embedded, feature_version=version)
    position = {r["id"]: i for i, r in enumerate(kept)}
    answers = [(position[t], a, c) for t, a, c in Annotation.objects.live()
               .filter(task__project_id=project.pk, task_id__in=[r["id"] for r in kept if not r["trusted"]])
               .values_list("task_id", "annotator_id", "choice_id")]
    try:
        result = confident.check_labels(
            matrix[[row_of_asset[r["asset_id"]] for r in kept]], [r["final_choice_id"] for r in kept],
            trusted=trusted, groups=[r["asset_id"] for r in kept], make_model=suggestions.make_classifier,
            answers=answers, several=project.overlap >= 2, seed=project.pk)
    except confident.TooFewLabels as exc:
        raise InvalidInput(f"too few labels to check: {exc}; label more images of those choices") from exc
    _step(check, 2)
    scored = [kept[int(r)] for r in result.rows]
    in_scope = np.array([check.batch_id is None or r["batch_id"] == check.batch_id for r in scored], dtype=bool)
    figures = _batch_figures(result, scored, in_scope)
    _step(check, 3)
    scores = [
        LabelQuality(task_id=row["id"], project_id=project.pk, batch_id=row["batch_id"], check_run_id=check.pk,
                     answer_id=row["final_choice_id"], suggested_id=int(result.suggested[i]),
                     score=float(result.quality[i]), likely_error=bool(result.issues[i]))
        for i, row in enumerate(scored) if in_scope[i]
    ]
    annotator_rows = [
        AnnotatorQuality(check_run_id=check.pk, annotator_id=a, quality=s.quality, agreement=s.agreement,
                         labeled=s.labeled, worst_choice_id=s.worst_class)
        for a, s in result.annotators.items()
    ]
    stale = LabelQuality.objects.filter(project_id=project.pk)
    if check.batch_id is not None:
        stale = stale.filter(batch_id=check.batch_id)
    with transaction.atomic():
        stale.delete()
        LabelQuality.objects.bulk_create(scores, batch_size=2000)
        AnnotatorQuality.objects.bulk_create(annotator_rows)
        LabelCheck.objects.filter(pk=check.pk).update(
            status=LabelCheckStatus.DONE, finished_at=timezone.now(), steps_done=LabelCheck.STEPS,
            method=result.method, scored=len(scores), flagged=sum(1 for s in scores if s.likely_error),
            estimated_errors=round(sum(f["estimated_errors"] for f in figures.values()), 2),
            estimate_method=confident.ESTIMATE_SINGLE if result.method == confident.SINGLE else confident.ESTIMATE_MULTI,
            heldout=result.heldout, heldout_correct=result.heldout_correct, figures=figures)


def _batch_figures(result: confident.Check, scored: list[dict[str, Any]], in_scope: np.ndarray) -> dict[str, Any]:
    """{batch id: {scored, flagged, estimated_errors}} for the batches in scope. A batch's estimate counts its
    own rows with the whole project's per-class thresholds (confident learning), or its own rows' CROWDLAB
    disagreements."""
    index_of = {c: i for i, c in enumerate(result.classes.tolist())}
    by_batch: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(scored):
        if in_scope[i]:
            by_batch[row["batch_id"]].append(i)
    out = {}
    for batch_id, index in sorted(by_batch.items()):
        mine = np.array(index)
        if result.method == confident.SINGLE:
            labels = np.array([index_of[scored[i]["final_choice_id"]] for i in index])
            estimate = confident.estimate_errors(labels, result.probabilities[mine], thresholds=result.thresholds)
        else:
            estimate = float(result.issues[mine].sum())
        out[str(batch_id)] = {"scored": len(index), "flagged": int(result.issues[mine].sum()),
                              "estimated_errors": round(estimate, 2)}
    return out


# --- the likely-errors queue ------------------------------------------------------------------


def queue_rows(*, project: Project, reviewer: AbstractBaseUser | None = None, batch: Batch | None = None) -> Any:
    """The scored tasks still waiting for a look, lowest score first: the answer scored is still the task's,
    it is not gold nor decided by a review, no reviewer judged that answer yet, and (for `reviewer`) they did
    not answer it themselves."""
    rows = (LabelQuality.objects.select_related("task__asset", "answer", "suggested", "batch")
            .filter(project=project, task__final_choice_id=F("answer_id"), task__deleted_at__isnull=True,
                    task__status=TaskStatus.COMPLETED, task__is_gold=False)
            .exclude(task__decided_by=DecidedBy.AUDIT)
            .exclude(Exists(ErrorReview.objects.filter(task=OuterRef("task"), answer=OuterRef("answer")))))
    if batch is not None:
        rows = rows.filter(batch=batch)
    if reviewer is not None:
        rows = rows.exclude(Exists(Annotation.objects.live().filter(task=OuterRef("task"), annotator=reviewer)))
    return rows.order_by("score", "task_id")


def likely_errors(*, project: Project, reviewer: AbstractBaseUser, batch: Batch | None = None,
                  limit: int = QUEUE_PAGE) -> list[LabelQuality]:
    """A page of the likely-errors queue for a reviewer (see `queue_rows`)."""
    return list(queue_rows(project=project, reviewer=reviewer, batch=batch)[:limit])


def submit_review(*, task: Task, reviewer: AbstractBaseUser, correct: bool, choice_id: int | None) -> ErrorReview:
    """Record a reviewer's verdict on a task from the likely-errors queue; a correction overrides its answer.

    Takes the task's row lock. Refused with 409 when the task has no score (`not_scored`), is gold, was already
    judged for this answer by anyone (`already_reviewed`: a second submit is refused, not repeated), its answer
    changed since it was scored (`answer_changed`) or the reviewer answered it (`own_answer`). "Wrong, the right
    answer is the same one" is a confirmation. The verdict is not an audit: no error rate or acceptance reads it.
    """
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        score = LabelQuality.objects.filter(task=task).first()
        if score is None:
            raise Conflict("this task has no label quality score; it is not in the likely-errors queue",
                           code="not_scored")
        if task.is_gold:
            raise Conflict("a gold task's answer is the owner's", code="gold_task")
        if ErrorReview.objects.filter(task=task, answer_id=score.answer_id).exists():
            raise Conflict("this answer was already reviewed", code="already_reviewed")
        if task.final_choice_id != score.answer_id or task.decided_by == DecidedBy.AUDIT:
            raise Conflict("the task's answer changed since it was scored; it leaves the queue until the next check",
                           code="answer_changed")
        correct, corrected = quality.reviewed_choice(task=task, correct=correct, choice_id=choice_id,
                                                     answer_id=score.answer_id)
        if Annotation.objects.live().filter(task=task, annotator=reviewer).exists():
            raise Conflict("you answered this task yourself; another reviewer must review it", code="own_answer")
        review = ErrorReview.objects.create(
            task=task, batch_id=task.batch_id, answer_id=score.answer_id, score=score.score, reviewer=reviewer,
            verdict=ReviewVerdict.CORRECT if correct else ReviewVerdict.INCORRECT, corrected_choice=corrected)
        if corrected is not None:
            quality.override_answer(task_id=task.pk, choice=corrected)
            batch_id = task.batch_id
            transaction.on_commit(lambda: schedule_refresh(batch_id=batch_id))
    return review


# --- what the API and the pages show ------------------------------------------------------------


def check_state(check: LabelCheck) -> dict[str, Any]:
    """A check's row as the API shows it."""
    return {
        "id": check.pk, "project": check.project_id, "batch": check.batch_id, "status": check.status,
        "progress": check.progress, "error": check.error, "method": check.method,
        "feature_version": check.feature_version, "labeled": check.labeled, "trusted": check.trusted,
        "not_embedded": check.not_embedded, "scored": check.scored, "flagged": check.flagged,
        "estimated_errors": check.estimated_errors, "estimate_method": check.estimate_method,
        "heldout": check.heldout, "heldout_correct": check.heldout_correct,
        "heldout_accuracy": check.heldout_correct / check.heldout if check.heldout else None,
        "created_at": check.created_at, "started_at": check.started_at, "finished_at": check.finished_at,
    }


def summary(*, project: Project) -> dict[str, Any]:
    """The quality page's figures: the latest check, per batch the estimated wrong answers (the latest check
    that scored the batch), what the review of the queue found since and how many are left; per annotator the
    check's quality beside their gold accuracy."""
    latest = LabelCheck.objects.filter(project=project).order_by("-id").first()
    done = list(LabelCheck.objects.filter(project=project, status=LabelCheckStatus.DONE).order_by("-id")[:50])
    batches = []
    names = dict(Batch.objects.alive().filter(project=project).values_list("id", "name"))
    reviews: dict[int, list[tuple[Any, str]]] = defaultdict(list)
    for batch_id, verdict, created_at in (ErrorReview.objects.filter(batch__project=project)
                                          .values_list("batch_id", "verdict", "created_at")):
        reviews[batch_id].append((created_at, verdict))
    seen: set[int] = set()
    for check in done:
        for key, figures in check.figures.items():
            batch_id = int(key)
            if batch_id in seen or batch_id not in names:
                continue
            seen.add(batch_id)
            mine = reviews.get(batch_id, [])
            found = [at for at, verdict in mine if verdict == ReviewVerdict.INCORRECT]
            since = sum(1 for at in found if at > check.finished_at)  # errors the estimate still counted
            batches.append({
                "batch": batch_id, "name": names[batch_id], "check": check.pk, "checked_at": check.finished_at,
                "method": check.method, "estimate_method": check.estimate_method, **figures,
                "reviewed": len(mine), "found": len(found),
                "left": round(max(0.0, figures["estimated_errors"] - since), 2),
            })
    batches.sort(key=lambda b: b["batch"])
    annotator_check = next((c for c in done if c.annotators.exists()), None)
    gold = reports.gold_scores(project=project)
    users = dict(get_user_model().objects.filter(memberships__project=project).values_list("id", "username"))
    annotators = []
    if annotator_check is not None:
        for row in annotator_check.annotators.select_related("worst_choice").order_by("quality"):
            g = gold.get(row.annotator_id) or {}
            annotators.append({
                "username": users.get(row.annotator_id, str(row.annotator_id)), "quality": round(row.quality, 4),
                "agreement": None if row.agreement is None else round(row.agreement, 4), "labeled": row.labeled,
                "worst_choice": row.worst_choice.label if row.worst_choice else None,
                "gold_accuracy": g.get("accuracy"), "gold_answers": g.get("gold_answers", 0),
            })
    return {
        "latest": check_state(latest) if latest else None,
        "queue": queue_rows(project=project).count(),
        "batches": batches,
        "annotator_method": annotator_check.method if annotator_check else None,
        "annotators": annotators,
    }


def scored_filter(*, likely_error: bool | None, score_max: float | None) -> Q:
    """The task listing's label-quality filters as one Q on Task."""
    q = Q()
    if likely_error is not None:
        q &= Q(label_quality__likely_error=likely_error)
    if score_max is not None:
        q &= Q(label_quality__score__lte=score_max)
    return q
