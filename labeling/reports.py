"""Read-only quality figures: calibration, annotator scores, audit plans, batch quality, Dawid–Skene.

Nothing here writes; `quality.py` makes the decisions these figures feed (pauses, acceptance).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import TruncDay, TruncWeek

from winnow.exceptions import InvalidInput

from . import stats
from .models import (
    LABELABLE_BATCH_STATUSES,
    Annotation,
    Audit,
    AuditVerdict,
    Batch,
    BatchKind,
    BatchStatus,
    Membership,
    Project,
    Task,
    TaskStatus,
    Trap,
)

RECENT_GOLD = 20  # "recent" gold accuracy looks at an annotator's last this-many gold answers


LOW_AGREEMENT = 2 / 3  # consensus at or under this share of annotators is flagged


# Annotators see their gold accuracy in whole blocks of this many gold answers. Were it exact, an
# annotator checking it after each answer would learn which tasks were gold, and the right answers
# to the gold copies that come back in later batches.
GOLD_FEEDBACK_BLOCK = 10


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
    assisted = dict(Annotation.objects.live().filter(task__project=project, assisted=True)
                    .values_list("annotator_id").annotate(n=Count("id")))
    traps: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for user_id, accepted in Trap.objects.filter(task__project=project).values_list("annotator_id", "accepted_at"):
        traps[user_id][0] += 1
        traps[user_id][1] += accepted is not None
    table = []
    for m in project.memberships.select_related("user").order_by("user__username"):
        score = scores.get(m.user_id, {})
        shown, accepted = traps.get(m.user_id, (0, 0))
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
                "assisted_answers": assisted.get(m.user_id, 0),
                "traps_shown": shown,
                "traps_accepted": accepted,
                "trap_acceptance": accepted / shown if shown else None,
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


def auditable_tasks(batch: Batch) -> Any:
    # Gold copies are checked against the owner's answer already; audit what annotators decided.
    return batch.tasks.alive().filter(status=TaskStatus.COMPLETED, is_gold=False, final_choice__isnull=False)


def audit_plan(*, batch: Batch, size: int | None = None, width: float | None = None,
               expected_error_rate: float = 0.01) -> dict[str, Any]:
    """What an audit would look like: how many tasks, split by answer, and what that can prove."""
    project = batch.project
    available = dict(
        auditable_tasks(batch).values_list("final_choice__label").annotate(n=Count("id")).order_by()
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


def batch_quality(*, batch: Batch) -> dict[str, Any]:
    """The figures owners quote: audited, errors, error rate with Wilson and Clopper–Pearson 95%
    intervals, the decision, per-choice figures, consensus agreement and gold accuracy."""
    audits = list(
        Audit.objects.filter(batch=batch, round=batch.audit_round)
        .exclude(verdict=AuditVerdict.PENDING)
        .annotate(assisted=Exists(Annotation.objects.live().filter(task=OuterRef("task"), assisted=True)))
        .values_list("answer__label", "verdict", "assisted")
    )
    pending = Audit.objects.filter(batch=batch, round=batch.audit_round, verdict=AuditVerdict.PENDING).count()
    n = len(audits)
    errors = sum(1 for _, v, _ in audits if v == AuditVerdict.INCORRECT)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for label, verdict, _ in audits:
        per[label][verdict] += 1
    # Answers given by confirming a suggestion, and the rest, each with its own error rate and interval.
    by_help = {}
    for name, wanted in (("assisted", True), ("unassisted", False)):
        m = sum(1 for *_, a in audits if a == wanted)
        k = sum(1 for _, v, a in audits if a == wanted and v == AuditVerdict.INCORRECT)
        by_help[name] = {"audited": m, "errors": k, "error_rate": k / m if m else None, "wilson": list(stats.wilson(k, m))}
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
        **by_help,
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


# The annotator page's batch counts may be this stale; computing them scans the open batches.
PROGRESS_CACHE_SECONDS = 5


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict[str, Any]:
    """What the annotator page shows: the open batches' done and remaining tasks, and my answers.

    The batch counts are shared by every annotator of the project and cost a scan of its open
    batches, so they are cached for `PROGRESS_CACHE_SECONDS`; the annotator's own count is exact.
    `gold_accuracy` is the annotator's gold accuracy as a share, in whole blocks of gold answers
    (`shown_gold_accuracy`); None before the first block.
    """
    key = f"winnow:progress:{project.pk}"
    batches = cache.get(key)
    if batches is None:
        rows = (
            Task.objects.alive()
            .filter(project=project, batch__status__in=(*LABELABLE_BATCH_STATUSES, BatchStatus.LABELED))
            .values_list("batch_id", "status")
            .annotate(n=Count("id"))
        )
        per_batch: dict[int, dict[str, int]] = {}
        for batch_id, status, n in rows:
            counts = per_batch.setdefault(batch_id, {"done": 0, "remaining": 0})
            if status == TaskStatus.COMPLETED:
                counts["done"] += n
            elif status in (TaskStatus.QUEUED, TaskStatus.PENDING):
                counts["remaining"] += n
        names = dict(Batch.objects.filter(pk__in=per_batch).values_list("id", "name"))
        batches = [
            {"id": batch_id, "name": names.get(batch_id, ""), **counts, "total": counts["done"] + counts["remaining"]}
            for batch_id, counts in sorted(per_batch.items())
        ]
        cache.set(key, batches, PROGRESS_CACHE_SECONDS)
    return {
        "mine": Annotation.objects.live().filter(task__project=project, annotator=annotator).count(),
        "done": sum(b["done"] for b in batches),
        "remaining": sum(b["remaining"] for b in batches),
        "batches": batches,
        "gold_accuracy": _shown_overall(project, annotator),
    }


def _shown_overall(project: Project, annotator: AbstractBaseUser) -> float | None:
    """The share the annotator page shows; `GET …/me/` has the whole figure (recent, answers)."""

    shown = shown_gold_accuracy(project=project, annotator=annotator)
    return shown["overall"] if shown else None


# --- the owner's quality page -------------------------------------------------------------------

BUCKETS = {"day": TruncDay, "week": TruncWeek}


def gold_accuracy_series(*, project: Project, bucket: str = "day") -> dict[str, Any]:
    """Per annotator, their live gold answers grouped by day (or week) of answering: answers, correct,
    accuracy. Gold copies in production and reviewed calibration tasks both count, as they do for pausing."""
    trunc = BUCKETS[bucket]
    rows = (
        Annotation.objects.live()
        .filter(task__project=project, task__is_gold=True, task__deleted_at__isnull=True)
        .annotate(start=trunc("created_at"))
        .values("annotator__username", "start")
        .annotate(answers=Count("id"), correct=Count("id", filter=Q(choice_id=F("task__gold_choice_id"))))
        .order_by("annotator__username", "start")
    )
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault(row["annotator__username"], []).append(
            {"start": row["start"], "answers": row["answers"], "correct": row["correct"],
             "accuracy": row["correct"] / row["answers"]}
        )
    return {
        "bucket": bucket,
        "min_gold_accuracy": project.min_gold_accuracy,
        "series": [{"username": name, "points": points} for name, points in series.items()],
    }


def audit_overview(*, project: Project) -> list[dict[str, Any]]:
    """Every production batch that has been audited, oldest first, with its name, kind and the figures of
    its current round (`batch_quality`: errors, Wilson and Clopper–Pearson intervals, decision)."""
    batches = project.batches.alive().filter(kind=BatchKind.PRODUCTION, audit_round__gt=0).select_related("project")
    return [{"name": batch.name, **batch_quality(batch=batch)} for batch in batches.order_by("id")]
