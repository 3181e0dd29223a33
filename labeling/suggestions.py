"""Suggestions: a classifier on the embeddings gives every queued task a choice and a calibrated confidence.

The model is a logistic regression on standardised embeddings (`make_classifier`), learned from the
project's gold tasks (the owner's answers) and accepted answers (completed tasks' final answers),
one label per image. It is refit by a debounced job (`SuggestionFit`, a `BackgroundJob`) after the
embedding job and as tasks are answered.

How good it is, is measured on gold it did not learn from: the gold images are split into
folds; each fold is predicted by a model fitted without it (and the feature model never learns from
gold, labeling/features.py). The share predicted right is the project's accuracy estimate, with its
Wilson 95% interval. The same held-out predictions set a temperature (one number dividing the
log-probabilities, fitted by maximum likelihood), so a stated confidence of 0.9 is right about nine
times in ten on gold.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from winnow import jobs as background

from . import stats
from .features import (  # noqa: F401 (choice_order is part of this module's interface)
    accepted_answers,
    choice_order,
    embedding_matrix,
)
from .models import (
    LABELABLE_BATCH_STATUSES,
    AssistJobStatus,
    Embedding,
    Project,
    Suggestion,
    SuggestionFit,
    Task,
    TaskStatus,
)

log = logging.getLogger(__name__)

FOLDS = 5
MIN_GOLD_FOR_TEMPERATURE = 8


def make_classifier() -> Any:
    """The suggestion model, unfitted: standardised embeddings into a multinomial logistic regression
    (scikit-learn; `predict_proba` gives one column per class in `classes_` order)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))


def training_labels(project_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """({asset id: gold choice id}, {asset id: accepted choice id}): one label per image, gold winning."""
    gold = dict(Task.objects.alive().filter(project_id=project_id, is_gold=True, gold_choice__isnull=False,
                                            asset__isnull=False).values_list("asset_id", "gold_choice_id"))
    accepted = {a: c for a, c in accepted_answers(project_id).items() if a not in gold}
    return gold, accepted


# --- queueing ---------------------------------------------------------------------------------


def schedule_refit(*, project_id: int, countdown: float | None = None) -> None:
    """Refit the project's suggestions soon. Debounced: the first call in WINNOW_ASSIST_DEBOUNCE_SECONDS
    queues a fit that starts when the window ends; later calls in the window cost one cache write."""
    wait = settings.WINNOW_ASSIST_DEBOUNCE_SECONDS if countdown is None else countdown
    if wait > 0 and not cache.add(f"winnow:refit:{project_id}", 1, timeout=wait):
        return
    fit = SuggestionFit.objects.create(project_id=project_id)
    transaction.on_commit(lambda: _enqueue(fit.pk, wait))


def note_answer(project_id: int) -> None:
    """A task was answered: refit once the burst of answers is over, where the project has embeddings. Every
    completed task runs this: it costs a cache read, and a database read a minute per project at most."""
    if not settings.WINNOW_ASSIST or cache.get(f"winnow:refit:{project_id}"):
        return
    key = f"winnow:embedded:{project_id}"
    embedded = cache.get(key)
    if embedded is None:
        embedded = Embedding.objects.filter(project_id=project_id).exists()
        cache.set(key, embedded, 60)
    if embedded:
        schedule_refit(project_id=project_id)


def _enqueue(fit_id: int, countdown: float = 0) -> None:
    from . import jobs

    jobs.refit_suggestions.apply_async((fit_id,), countdown=countdown)


def requeue_stalled() -> list[int]:
    return background.recover_stale(SuggestionFit, _enqueue)


# --- the job ------------------------------------------------------------------------------------


def run_refit(*, fit_id: int) -> None:
    """Fit the suggestion model on the project's labels and write every queued task's suggestion.

    A background job: claimed once (a redelivered message does nothing), failed with the reason if it
    raises. Suggestions are replaced in one transaction, so a page never sees half of them. A project's
    fits run one after another (`refit_lock`), so the last to read the labels is the last to write."""
    if not SuggestionFit.objects.claim(fit_id):
        return
    fit = SuggestionFit.objects.get(pk=fit_id)

    def work() -> None:
        with refit_lock(fit.project_id):
            _refit(fit)

    background.run_claimed(background.JobBeat(SuggestionFit, fit_id), work)


# pg_advisory_xact_lock(key1, key2): this module's key1, the project id as key2.
REFIT_LOCK_KEY = 0x57524631  # "WRF1"


@contextlib.contextmanager
def refit_lock(project_id: int) -> Iterator[None]:
    """Wait for the project's other refit, if one is running, and hold the project until this one is done.

    A PostgreSQL advisory lock of a transaction round the whole refit: released when it commits or rolls
    back, or when a killed worker's connection closes, and safe behind a transaction-mode pooler, where a
    session's lock could outlive its client. Each statement inside still reads what is committed when it
    runs. Without it, two workers fitting at once could finish in the wrong order and an older fit's
    suggestions replace a newer one's."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [REFIT_LOCK_KEY, project_id])
        yield


def _refit(fit: SuggestionFit) -> None:
    project_id = fit.project_id
    ids, matrix = embedding_matrix(project_id)
    gold, accepted = training_labels(project_id)
    row_of = {a: i for i, a in enumerate(ids)}
    gold_assets = [a for a in gold if a in row_of]
    accepted_assets = [a for a in accepted if a in row_of]
    figures: dict[str, Any] = {"gold": len(gold_assets), "accepted": len(accepted_assets),
                               "feature_version": Embedding.objects.filter(project_id=project_id)
                               .values_list("version", flat=True).first()}
    labels = {**{a: accepted[a] for a in accepted_assets}, **{a: gold[a] for a in gold_assets}}
    if len(set(labels.values())) < 2:
        # One class or none: nothing to tell apart yet. Old suggestions go; they came from other labels.
        with transaction.atomic():
            Suggestion.objects.filter(batch__project_id=project_id).delete()
        _finish(fit, **figures)
        return
    x_gold = matrix[[row_of[a] for a in gold_assets]]
    y_gold = np.array([gold[a] for a in gold_assets])
    x_acc = matrix[[row_of[a] for a in accepted_assets]]
    y_acc = np.array([accepted[a] for a in accepted_assets])
    correct, logp, truth = heldout_predictions(x_gold, y_gold, x_acc, y_acc, seed=project_id)
    temperature = fit_temperature(logp, truth) if len(truth) >= MIN_GOLD_FOR_TEMPERATURE else 1.0
    model = make_classifier().fit(np.concatenate([x_acc, x_gold]), np.concatenate([y_acc, y_gold]))
    queued = list(Task.objects.alive().filter(project_id=project_id, status=TaskStatus.QUEUED, asset__isnull=False,
                                              batch__status__in=LABELABLE_BATCH_STATUSES)
                  .values_list("id", "batch_id", "asset_id"))
    rows = [(t, b, row_of[a]) for t, b, a in queued if a in row_of]
    suggestions = []
    if rows:
        probabilities = calibrated(model, matrix[[r for _, _, r in rows]], temperature)
        classes = model.classes_
        best = probabilities.argmax(axis=1)
        suggestions = [Suggestion(task_id=t, batch_id=b, choice_id=int(classes[k]), confidence=float(p[k]), fit=fit)
                       for (t, b, _), k, p in zip(rows, best, probabilities, strict=True)]
    with transaction.atomic():
        Suggestion.objects.filter(batch__project_id=project_id).delete()
        Suggestion.objects.bulk_create(suggestions, batch_size=2000)
    _finish(fit, heldout=len(truth), heldout_correct=correct, temperature=temperature, suggested=len(suggestions),
            **figures)


def _finish(fit: SuggestionFit, **figures: Any) -> None:
    SuggestionFit.objects.filter(pk=fit.pk).update(status=AssistJobStatus.DONE, finished_at=timezone.now(), **figures)


def heldout_predictions(x_gold: np.ndarray, y_gold: np.ndarray, x_other: np.ndarray, y_other: np.ndarray, *,
                        seed: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
    """Predict every gold image with a model fitted without its fold (on the other folds and `x_other`).

    Returns (how many came out right, their log-probabilities over all choices seen, the gold labels'
    column in those); gold whose fold leaves fewer than two classes to learn from is not predicted."""
    n = len(y_gold)
    if n == 0:
        return 0, np.zeros((0, 0)), np.zeros(0, dtype=int)
    classes = np.unique(np.concatenate([y_gold, y_other]))
    fold = np.random.default_rng(seed).permutation(n) % min(FOLDS, n)
    correct = 0
    logps, truths = [], []
    for k in range(min(FOLDS, n)):
        test = fold == k
        x = np.concatenate([x_other, x_gold[~test]])
        y = np.concatenate([y_other, y_gold[~test]])
        if len(np.unique(y)) < 2:
            continue
        model = make_classifier().fit(x, y)
        seen = list(model.classes_)
        logp = np.full((int(test.sum()), len(classes)), -30.0)
        logp[:, [int(np.searchsorted(classes, c)) for c in seen]] = np.maximum(model.predict_log_proba(x_gold[test]), -30)
        correct += int((classes[logp.argmax(axis=1)] == y_gold[test]).sum())
        logps.append(logp)
        truths.append(np.searchsorted(classes, y_gold[test]))
    if not logps:
        return 0, np.zeros((0, len(classes))), np.zeros(0, dtype=int)
    return correct, np.concatenate(logps), np.concatenate(truths)


def fit_temperature(logp: np.ndarray, truth: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logp / T) on held-out gold."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(truth)), truth] - np.log(np.exp(z).sum(axis=1))).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def calibrated(model: Any, x: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities (columns in `model.classes_` order) with the temperature applied."""
    z = np.maximum(model.predict_log_proba(x), -30) / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


# --- what the API shows -----------------------------------------------------------------------


def accuracy_estimate(project: Project) -> dict[str, Any]:
    """The latest fit's figures: labels learned from, held-out gold accuracy with its Wilson 95% interval,
    the temperature, how many queued tasks have a suggestion; and the state of the latest fit job."""
    done = SuggestionFit.objects.filter(project=project, status=AssistJobStatus.DONE).order_by("-id").first()
    latest = SuggestionFit.objects.filter(project=project).order_by("-id").first()
    n = done.heldout if done else 0
    k = done.heldout_correct if done else 0
    low, high = stats.wilson(k, n) if n else (0.0, 1.0)
    return {
        "fitted_at": done.finished_at if done else None,
        "feature_version": done.feature_version if done else None,
        "gold": done.gold if done else 0,
        "accepted": done.accepted if done else 0,
        "heldout": n,
        "heldout_correct": k,
        "accuracy": k / n if n else None,
        "interval": [low, high],
        "temperature": done.temperature if done else None,
        "suggested": done.suggested if done else 0,
        "job_status": latest.status if latest else None,
        "job_error": latest.error if latest else "",
    }


def suggestions_of(task_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{task id: {choice, label, confidence}} for the tasks that have a suggestion."""
    rows = Suggestion.objects.filter(task_id__in=list(task_ids)).values_list("task_id", "choice_id", "choice__label",
                                                                            "confidence")
    return {t: {"choice": c, "label": label, "confidence": round(p, 4)} for t, c, label, p in rows}
