"""Read-only figures for the owner's Quality page: gold accuracy over time, every batch's audit.

Nothing here writes; the decisions (pausing, accepting) live in `quality.py`, and these only show
the numbers those decisions were made on.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDay, TruncWeek

from . import quality
from .models import Annotation, BatchKind, Project

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
    its current round (`quality.batch_quality`: errors, Wilson and Clopper–Pearson intervals, decision)."""
    batches = project.batches.alive().filter(kind=BatchKind.PRODUCTION, audit_round__gt=0).select_related("project")
    return [{"name": batch.name, **quality.batch_quality(batch=batch)} for batch in batches.order_by("id")]
