"""A small labeled pile for the likely-error tests: answered tasks whose images' embeddings are well-separated
Gaussian clusters (one per true choice), with some answers planted wrong.

The embeddings are written to the embedding table as the embedding job writes them (labeling/vectors.py), so
the check reads real rows; the clusters stand in for a trained feature model, whose own tests are model
assistance's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labeling import answers, leasing, vectors
from labeling.models import BatchKind, Project, Task
from labeling.vectors import EMBEDDING_DIM


def cluster_embeddings(truth: list[int], seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """Unit vectors around one random centre per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (max(truth) + 1, EMBEDDING_DIM))
    x = centres[truth] + rng.normal(0, spread, (len(truth), EMBEDDING_DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def labeled_pile(project: Project, make_batch: Any, annotators: list[Any], *, n: int = 60, wrong: set[int] = frozenset(),
                 bad_annotator: Any = None, bad_rows: set[int] = frozenset(), seed: int = 0,
                 embed: bool = True) -> dict[str, Any]:
    """A production batch of `n` tasks; task i's true choice is choice i % 3. Every annotator of `annotators`
    answers every task (set the project's overlap to their number first), rightly except on rows in `wrong`
    (everyone gives the next choice) and, for `bad_annotator`, on rows in `bad_rows`. Returns the pieces."""
    batch = make_batch(project, n, kind=BatchKind.PRODUCTION, seed=seed)
    choices = list(project.choices.order_by("order", "id"))
    tasks = list(Task.objects.filter(batch=batch).order_by("id"))
    truth = {t.pk: i % len(choices) for i, t in enumerate(tasks)}
    row = {t.pk: i for i, t in enumerate(tasks)}
    if embed:
        vectors.write(project_id=project.pk, version=1, asset_ids=[t.asset_id for t in tasks],
                      matrix=cluster_embeddings([truth[t.pk] for t in tasks], seed=seed))
    for annotator in annotators:
        while leased := leasing.lease_tasks(project=project, annotator=annotator, count=20):
            for task in leased:
                k = truth[task.pk]
                if row[task.pk] in wrong or (annotator == bad_annotator and row[task.pk] in bad_rows):
                    k = (k + 1) % len(choices)
                answers.submit_annotation(task=task, annotator=annotator, choice_id=choices[k].pk, duration_ms=500)
    batch.refresh_from_db()
    return {"batch": batch, "tasks": tasks, "truth": truth, "choices": choices,
            "wrong_ids": {tasks[i].pk for i in wrong}}
