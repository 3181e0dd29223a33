"""A task's state from its live answers: the rule answers, quality and relabeling all use.

The owner's gold answer and an audit's correction outrank any vote; otherwise the majority of the
overlap decides, with its agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.utils import timezone

from . import stats
from .models import (
    Annotation,
    DecidedBy,
    Task,
    TaskStatus,
)


def resolve_task(
    *, task: Task, answers: list[int] | None = None, overlap: int | None = None, save: Sequence[str] = ()
) -> Task:
    """Recompute a task's answer from its live annotations (caller holds the task's row lock).

    The answer is the majority; agreement is the share who chose it. A task completes when it has
    `overlap` answers and no tie; a tie keeps it queued for one more annotator (up to twice overlap).
    `answers` (the live annotations' choice ids) saves reading them when the caller knows them;
    `overlap` (the project's) saves reading the project; `save` names fields the caller changed on
    `task`, written in the same UPDATE.
    """
    if answers is None:
        answers = list(Annotation.objects.live().filter(task=task).values_list("choice_id", flat=True))
    total = len(answers)
    update: dict[str, Any] = {}
    if total == 0:
        update = {"final_choice": None, "agreement": None, "decided_by": ""}
    else:
        vote = stats.majority(answers)
        tied = vote.tied
        update = {
            "final_choice_id": vote.answer,
            "agreement": vote.agreement,
            "decided_by": "" if tied else (DecidedBy.SINGLE if total == 1 else DecidedBy.CONSENSUS),
        }
        if overlap is None:
            overlap = task.project.overlap
        if task.status == TaskStatus.QUEUED and total >= overlap:
            if tied and total < 2 * overlap:
                # Ask one more annotator to break the tie.
                update["extra_answers"] = total - overlap + 1
            else:
                update.update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
    # The owner's gold answer and an audit's correction outrank any vote, now and after relabeling.
    if task.is_gold and task.gold_choice_id:
        update.update(final_choice_id=task.gold_choice_id, decided_by=DecidedBy.GOLD)
        update.pop("final_choice", None)
    elif task.decided_by == DecidedBy.AUDIT:
        for name in ("final_choice", "final_choice_id", "decided_by"):
            update.pop(name, None)
    for name, value in update.items():
        setattr(task, name, value)
    update.update({name: getattr(task, name) for name in save})
    _write_task(task.pk, update)
    return task


def _write_task(task_id: int, values: dict[str, Any]) -> None:
    """UPDATE one task's columns (field names or attnames) as one plain statement; the answer path runs it per image."""
    fields = [Task._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values(), strict=True)]
    with connection.cursor() as cursor:
        # Column names come from the model, never from a request.
        cursor.execute(f"UPDATE labeling_task SET {assignments} WHERE id = %s", [*params, task_id])  # noqa: S608
