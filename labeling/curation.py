"""The owner's edits to chosen tasks from the data manager: cancel, make gold, send back for relabeling.

Each task is handled on its own by the domain function that owns that change (`ingest.cancel_task`,
`quality.set_gold`, `quality.relabel_task`), in its own transaction, so one refusal never stops the
rest and every task is answered: done, or refused with a code and the reason.
"""

from __future__ import annotations

from typing import Any

from winnow.exceptions import DomainError, InvalidInput

from . import ingest, quality
from .models import Project, Task

ACTIONS = ("cancel", "make_gold", "relabel")
MAX_TASKS = 1000


def apply_to_tasks(*, project: Project, task_ids: list[int], action: str, choice_id: int | None = None) -> list[dict[str, Any]]:
    """Apply `action` to each of `task_ids` (tasks of `project` only; others are refused as unknown).

    `make_gold` confirms `choice_id`, or each task's current answer when None, as the right answer.
    Returns one result per id, in the order given, repeats once.
    """
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {list(ACTIONS)}")
    ids = list(dict.fromkeys(task_ids))[:MAX_TASKS]
    tasks = {t.pk: t for t in Task.objects.alive().filter(project=project, pk__in=ids).select_related("batch", "project")}
    results: list[dict[str, Any]] = []
    for task_id in ids:
        task = tasks.get(task_id)
        if task is None:
            results.append({"task": task_id, "status": "refused", "code": "not_found",
                            "detail": "no such task in this project"})
            continue
        try:
            if action == "cancel":
                ingest.cancel_task(task=task)
            elif action == "make_gold":
                choice = choice_id if choice_id is not None else task.final_choice_id
                if choice is None:
                    results.append({"task": task_id, "status": "refused", "code": "no_answer",
                                    "detail": "the task has no answer yet; choose the right one to make it gold"})
                    continue
                quality.set_gold(task=task, choice_id=choice)
            else:
                quality.relabel_task(task=task)
        except DomainError as exc:
            results.append({"task": task_id, "status": "refused", "code": exc.code, "detail": exc.message})
            continue
        results.append({"task": task_id, "status": "done"})
    return results
