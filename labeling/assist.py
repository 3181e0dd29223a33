"""Model assistance on the labeling pages: suggested grid pages with trap gold, and look-alikes.

A suggested page is a page of queued tasks that share one suggested choice, most confident first, all
pre-selected on the grid: the annotator deselects the wrong ones and one key answers the rest. Each
answer is an ordinary annotation marked `assisted`, so overlap, gold, consensus and audits apply as
to any other.

So that a page cannot be accepted without looking, trap gold is mixed in at the project's `trap_rate`:
copies of gold tasks whose right answer is *not* the page's choice, shown with the page's choice as
their suggestion and a confidence like their neighbours'. A trap is a hidden gold copy leased to the
annotator (`Trap` records what it was shown with): answering it with the shown choice is a wrong gold
answer, which lowers the annotator's gold accuracy and so feeds the automatic pause, and is counted
as an accepted trap on the quality page.
"""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from winnow.exceptions import Conflict, InvalidInput, NotFound

from . import vectors
from .leasing import labeling_membership, lease_tasks
from .models import (
    LABELABLE_BATCH_STATUSES,
    BatchKind,
    Choice,
    Embedding,
    Lease,
    Project,
    Suggestion,
    Task,
    TaskStatus,
    Trap,
)
from .suggestions import suggestions_of


def suggested_page(*, project: Project, annotator: AbstractBaseUser, count: int, choice_id: int | None = None,
                   like: int | None = None) -> dict[str, Any]:
    """Lease a page for the grid and say what the machine suggests for each task.

    Without `like`: up to `count` tasks suggested `choice_id` (default: the choice with the most queued
    suggestions that has any left for this annotator), most confident first, with trap gold mixed in at
    the project's trap rate in production batches. With `like` (a task id): the queued look-alikes of that
    task, nearest first, as an ordinary grid page (no traps). Leasing is `lease_tasks`' own (own leases
    first, overlap, skips, SKIP LOCKED). Refused: a choice of another project (400), a `like` task that is
    not the project's (404) or has no embedding yet (409)."""
    labeling_membership(project, annotator)
    if like is not None:
        task = Task.objects.alive().filter(project=project, pk=like).select_related("asset").first()
        if task is None:
            raise NotFound(f"task {like} is not a task of this project")
        neighbours = similar_tasks(task=task, k=max(3 * count, 24), queued_only=True)
        tasks = lease_tasks(project=project, annotator=annotator, count=count,
                            candidates=[n["task"] for n in neighbours]) if neighbours else []
        return _page(project, None, tasks, [])
    if choice_id is not None and not Choice.objects.filter(pk=choice_id, project=project).exists():
        raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
    traps_wanted = round(count * project.trap_rate)
    real = max(1, count - traps_wanted)
    for candidate in [choice_id] if choice_id is not None else busiest_choices(project):
        tasks = lease_tasks(project=project, annotator=annotator, count=real, choice_id=candidate)
        if tasks:
            traps = plant_traps(project=project, annotator=annotator, shown_choice_id=candidate, tasks=tasks,
                                count=min(traps_wanted, count - len(tasks)))
            return _page(project, candidate, tasks, traps)
    return _page(project, choice_id, [], [])


def busiest_choices(project: Project) -> list[int]:
    """The project's choices by how many queued tasks in labelable batches are suggested each, most first."""
    rows = (Suggestion.objects.filter(batch__project=project, batch__status__in=LABELABLE_BATCH_STATUSES,
                                      task__status=TaskStatus.QUEUED, task__deleted_at__isnull=True)
            .values("choice_id").annotate(n=Count("task_id")).order_by("-n", "choice_id"))
    return [row["choice_id"] for row in rows]


def plant_traps(*, project: Project, annotator: AbstractBaseUser, shown_choice_id: int, tasks: list[Task],
                count: int) -> list[Task]:
    """Copy up to `count` gold tasks whose right answer is not `shown_choice_id` into the page's production
    batch, lease them to the annotator and record them as traps shown with that choice. Gold images this
    annotator was already trapped with are not used again while others remain."""
    batch_ids = {t.batch_id for t in tasks}
    production = (Task.objects.filter(batch_id__in=batch_ids, batch__kind=BatchKind.PRODUCTION)
                  .values_list("batch_id", flat=True).first())
    if count <= 0 or production is None:
        return []
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    # Traps of this page still open to the annotator (a reload) come back first, their leases renewed.
    held = list(Task.objects.alive().filter(
        pk__in=Trap.objects.filter(annotator=annotator, shown_choice_id=shown_choice_id, accepted_at__isnull=True)
        .values("task_id"), status=TaskStatus.QUEUED, leases__annotator=annotator, leases__expires_at__gt=now)
        .exclude(annotations__annotator=annotator, annotations__discarded_at__isnull=True)
        .select_related("asset").order_by("id")[:count])
    Lease.objects.filter(task__in=held, annotator=annotator).update(expires_at=expires)
    for trap in held:
        trap.lease_expires_at = expires  # type: ignore[attr-defined]
    count -= len(held)
    if count <= 0:
        return held
    used = set(Trap.objects.filter(annotator=annotator, task__project=project).values_list("task__gold_source_id",
                                                                                           flat=True))
    sources = list(Task.objects.alive().filter(project=project, is_gold=True, gold_source__isnull=True,
                                               asset__isnull=False, gold_choice__isnull=False)
                   .exclude(gold_choice_id=shown_choice_id).select_related("asset"))
    if not sources:
        return held
    rng = random.Random(secrets.randbits(64))
    rng.shuffle(sources)
    sources.sort(key=lambda s: s.pk in used)  # fresh images first
    copies = list(held)
    with transaction.atomic():
        for source in sources[:count]:
            copy = Task.objects.create(
                project=project, batch_id=production, asset=source.asset, is_gold=True, gold_choice_id=source.gold_choice_id,
                gold_source=source, source_name=source.source_name, metadata=source.metadata, status=TaskStatus.QUEUED,
            )
            Lease.objects.create(task=copy, annotator=annotator, expires_at=expires)
            Trap.objects.create(task=copy, annotator=annotator, shown_choice_id=shown_choice_id)
            copy.lease_expires_at = expires  # type: ignore[attr-defined]
            copies.append(copy)
    return copies


def _page(project: Project, choice_id: int | None, tasks: list[Task], traps: list[Task]) -> dict[str, Any]:
    suggested = suggestions_of([t.pk for t in tasks])
    rows = [(t, suggested.get(t.pk)) for t in tasks]
    if traps:
        label = Choice.objects.filter(pk=choice_id).values_list("label", flat=True).first()
        confidences = [s["confidence"] for _, s in rows if s] or [0.9]
        rng = random.Random(secrets.randbits(64))
        for trap in traps:
            # Shown like its neighbours: the page's choice, a confidence drawn from the page's own.
            shown = {"choice": choice_id, "label": label, "confidence": rng.choice(confidences)}
            rows.insert(rng.randrange(len(rows) + 1), (trap, shown))
    label = Choice.objects.filter(pk=choice_id).values_list("label", flat=True).first() if choice_id else None
    return {"choice": choice_id, "label": label, "tasks": rows}


def similar_tasks(*, task: Task, k: int, queued_only: bool = False) -> list[dict[str, Any]]:
    """The task's look-alikes in its project by embedding (cosine) distance, nearest first: one row per
    image (its first live task), `queued_only` keeps queued tasks. Refused (409) while the task's image has
    no embedding: the embedding job has not reached it yet."""
    if task.asset_id is None:
        raise Conflict("this task has no image yet (its download is pending), so it has no look-alikes",
                       code="no_embedding")
    own = Embedding.objects.filter(project_id=task.project_id, asset_id=task.asset_id).first()
    if own is None:
        raise Conflict("this image has no embedding yet: the embedding job has not reached it; try again once the "
                       "batches page shows every image embedded", code="no_embedding")
    nearest = vectors.nearest(project_id=task.project_id, vector=own.vector, k=4 * k if queued_only else k + 8,
                              exclude=[task.asset_id])
    tasks = Task.objects.alive().filter(project_id=task.project_id, asset_id__in=[a for a, _ in nearest])
    if queued_only:
        tasks = tasks.filter(status=TaskStatus.QUEUED)
    first: dict[int, int] = {}
    for asset_id, task_id in tasks.order_by("id").values_list("asset_id", "id"):
        first.setdefault(asset_id, task_id)
    rows = [{"task": first[a], "asset": a, "distance": round(d, 5)} for a, d in nearest if a in first]
    return rows[:k]
