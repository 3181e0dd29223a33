"""Confident learning: which given labels are likely wrong (the maths; numpy, scikit-learn and cleanlab, no Django).

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR 2021), and
for several annotators per image CROWDLAB (Goh, Tkachenko and Mueller, "CROWDLAB: Supervised learning to
infer consensus labels and quality scores for data with multiple annotators", 2022), both through the
`cleanlab` library. docs/LABEL_ERRORS.md explains the method and what the figures mean.

The input is one row per labeled task: its features (the image's embedding), its given label (the task's
answer), whether that label is *trusted* (the owner's gold, or a reviewer's correction) and, for
several annotators, every annotator's answer. What comes out, for the rows that are not trusted:

* out-of-sample class probabilities: the rows are split into stratified folds (rows of one image share a
  fold), and each fold is predicted by a classifier fitted without it. Trusted rows are never scored: they
  are in every fold's training set, and their own probabilities (for the held-out check only) come from a
  second round of folds, each fitted without them;
* a label quality score in [0, 1] per row, low meaning likely wrong: the probability the model (overlap 1,
  `cleanlab.rank.get_label_quality_scores`, self-confidence) or CROWDLAB's posterior, which weighs the
  model against each annotator's estimated reliability (`cleanlab.multiannotator`), gives the given label;
* a flag per row: `cleanlab.filter.find_label_issues` (prune by noise rate) for overlap 1; for several
  annotators, CROWDLAB's best consensus label differs from the given one;
* an estimate of how many given labels are wrong (`estimate_errors`; with several annotators, the count of
  CROWDLAB's flags), and per-annotator quality.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FOLDS = 5
MIN_PER_CLASS = 5  # labeled rows a class needs, so that every fold has one to learn from
PROBABILITY_FLOOR = 1e-6

SINGLE = "confident-learning"
MULTI = "crowdlab"
ESTIMATE_SINGLE = "cleanlab confident joint, off-diagonal, calibrated"
ESTIMATE_MULTI = "CROWDLAB: tasks whose consensus label differs from the answer"


class TooFewLabels(ValueError):
    """The rows cannot support a cross-validated model; the message says what is missing."""


@dataclass
class AnnotatorScore:
    quality: float  # CROWDLAB's annotator quality, or (overlap 1) the mean quality score of their answers
    agreement: float | None  # share of their answers agreeing with the consensus (several annotators only)
    labeled: int
    worst_class: Any = None  # the class they most often get wrong (several annotators only)


@dataclass
class Check:
    """The figures of one check over the untrusted rows (`rows`: their indices in the input)."""

    method: str
    classes: np.ndarray  # the label values, in the probabilities' column order
    rows: np.ndarray
    probabilities: np.ndarray  # (len(rows), len(classes)), out of sample
    quality: np.ndarray  # (len(rows),) in [0, 1]; low means likely wrong
    issues: np.ndarray  # (len(rows),) bool: flagged as a likely error
    suggested: np.ndarray  # (len(rows),) the label value most likely right
    thresholds: np.ndarray  # per class: the mean probability of the class among rows given it
    annotators: dict[Any, AnnotatorScore] = field(default_factory=dict)
    heldout: int = 0  # trusted rows predicted out of sample
    heldout_correct: int = 0


def _fit_predict(make_model: Callable[[], Any], x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray,
                 n_classes: int) -> np.ndarray:
    """Probabilities over all classes (0..n_classes-1) of a model fitted on (x_fit, y_fit)."""
    model = make_model().fit(x_fit, y_fit)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(x)
    out = np.maximum(out, PROBABILITY_FLOOR)
    return out / out.sum(axis=1, keepdims=True)


def _folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of `folds` stratified folds in which rows of one group stay together."""
    from sklearn.model_selection import StratifiedGroupKFold

    with warnings.catch_warnings():  # a class rarer than the folds among these rows: sklearn says so, we know
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]


def out_of_sample_probabilities(x: np.ndarray, y: np.ndarray, trusted: np.ndarray, groups: np.ndarray, *,
                                n_classes: int, make_model: Callable[[], Any], folds: int = FOLDS,
                                seed: int = 0) -> np.ndarray:
    """Every row's class probabilities from a model that never saw that row's label.

    `y` holds class indices (0..n_classes-1). Untrusted rows are split into `folds` folds (stratified, one
    group per fold), each predicted by a model fitted on the other folds and every trusted row; trusted rows
    are then split the same way, each fold predicted by a model fitted on every untrusted row and the other
    trusted folds (cross_val_predict cannot keep rows in every training set, hence the loop)."""
    probabilities = np.zeros((len(y), n_classes))
    for part in (~trusted, trusted):
        index = np.flatnonzero(part)
        other = np.flatnonzero(~part)
        if len(index) == 0:
            continue
        k = min(folds, len(np.unique(groups[index])))
        if k < 2:  # one trusted image: predict it from all the rest
            probabilities[index] = _fit_predict(make_model, x[other], y[other], x[index], n_classes)
            continue
        for test in _folds(y[index], groups[index], k, seed):
            held = index[test]
            fit = np.concatenate([other, np.setdiff1d(index, held, assume_unique=True)])
            probabilities[held] = _fit_predict(make_model, x[fit], y[fit], x[held], n_classes)
    return probabilities


def class_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Confident learning's per-class threshold: the mean probability of class j among rows labeled j."""
    from cleanlab.count import get_confident_thresholds

    return np.asarray(get_confident_thresholds(labels, probabilities), dtype=float)


def estimate_errors(labels: np.ndarray, probabilities: np.ndarray, *,
                    thresholds: np.ndarray | None = None) -> float:
    """How many of these given labels are wrong (one answer per task): the off-diagonal of cleanlab's
    calibrated confident joint. `thresholds` may come from a larger set of rows, so a batch's estimate uses the
    whole project's per-class thresholds. (With several annotators the estimate is the count of CROWDLAB's
    flags, ESTIMATE_MULTI.)"""
    if len(labels) == 0:
        return 0.0
    from cleanlab.count import compute_confident_joint

    with warnings.catch_warnings():  # a batch missing a class: the joint's row for it is empty, as it should be
        warnings.simplefilter("ignore")
        joint = compute_confident_joint(labels, probabilities, thresholds=thresholds, calibrate=False)
    joint = np.asarray(joint, dtype=float)
    # Calibrate (Northcutt et al. eq. 2): each row sums to the count of its given label, here, in these rows.
    counts = np.bincount(labels, minlength=joint.shape[0]).astype(float)
    sums = joint.sum(axis=1)
    scale = np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)
    calibrated = joint * scale[:, None]
    return float(calibrated.sum() - np.trace(calibrated))


def check_labels(x: np.ndarray, labels: Sequence[Any], *, trusted: Sequence[bool], groups: Sequence[Any],
                 make_model: Callable[[], Any], answers: Sequence[tuple[int, Any, Any]] = (),
                 several: bool = False, folds: int = FOLDS, seed: int = 0) -> Check:
    """Score every untrusted row's label (see the module's docstring).

    `answers` are (row, annotator, label) triples, every annotator's answer on the rows (answers on trusted
    rows are ignored); with `several` (overlap of two or more) CROWDLAB scores the rows and the annotators,
    otherwise confident learning scores the rows and an annotator's quality is the mean score of the rows
    they answered. Raises TooFewLabels when a class has fewer than MIN_PER_CLASS rows or there are fewer
    than two classes or `folds` untrusted rows."""
    given = np.asarray(labels)
    trusted_mask = np.asarray(trusted, dtype=bool)
    group = np.asarray(groups)
    classes, y = np.unique(given, return_inverse=True)
    if len(classes) < 2:
        raise TooFewLabels("the labels hold fewer than two choices; there is nothing to tell apart")
    counts = np.bincount(y, minlength=len(classes))
    rare = [(classes[i], int(n)) for i, n in enumerate(counts) if n < MIN_PER_CLASS]
    if rare:
        raise TooFewLabels("; ".join(f"choice {c} has {n} labeled image{'s' if n != 1 else ''}" for c, n in rare)
                           + f" (at least {MIN_PER_CLASS} each are needed)")
    rows = np.flatnonzero(~trusted_mask)
    if len(rows) < folds:
        raise TooFewLabels(f"{len(rows)} answered tasks to check; at least {folds} are needed")
    probabilities = out_of_sample_probabilities(np.asarray(x, dtype=np.float32), y, trusted_mask, group,
                                                n_classes=len(classes), make_model=make_model, folds=folds, seed=seed)
    heldout = np.flatnonzero(trusted_mask)
    heldout_correct = int((probabilities[heldout].argmax(axis=1) == y[heldout]).sum())
    p, labels_scored = probabilities[rows], y[rows]
    thresholds = class_thresholds(labels_scored, p)
    position = {int(r): i for i, r in enumerate(rows)}
    index_of = {c: i for i, c in enumerate(classes.tolist())}
    scored_answers = [(position[int(r)], a, index_of[c]) for r, a, c in answers
                      if int(r) in position and c in index_of]
    if several and any(n > 1 for n in np.bincount([r for r, _, _ in scored_answers] or [0])):
        result = _crowdlab(labels_scored, p, scored_answers, classes)
    else:
        result = _confident_learning(labels_scored, p, scored_answers)
    quality, issues, suggested, annotators, method = result
    return Check(method=method, classes=classes, rows=rows, probabilities=p, quality=quality, issues=issues,
                 suggested=classes[suggested], thresholds=thresholds, annotators=annotators,
                 heldout=len(heldout), heldout_correct=heldout_correct)


def _confident_learning(labels: np.ndarray, p: np.ndarray, answers: list[tuple[int, Any, int]]) -> tuple[Any, ...]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = np.asarray(get_label_quality_scores(labels, p), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = np.asarray(find_label_issues(labels, p, filter_by="prune_by_noise_rate", n_jobs=1), dtype=bool)
    annotators: dict[Any, AnnotatorScore] = {}
    for annotator in sorted({a for _, a, _ in answers}, key=str):
        mine = [(r, c) for r, a, c in answers if a == annotator]
        annotators[annotator] = AnnotatorScore(quality=float(np.mean([p[r, c] for r, c in mine])), agreement=None,
                                               labeled=len(mine))
    return quality, issues, p.argmax(axis=1), annotators, SINGLE


def _crowdlab(labels: np.ndarray, p: np.ndarray, answers: list[tuple[int, Any, int]],
              classes: np.ndarray) -> tuple[Any, ...]:
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    who = sorted({a for _, a, _ in answers}, key=str)
    column = {a: j for j, a in enumerate(who)}
    matrix = np.full((len(labels), len(who)), np.nan)
    for r, a, c in answers:
        matrix[r, column[a]] = c
    # Every answered task has at least its own answer's votes; a row with none cannot be weighed.
    empty = np.isnan(matrix).all(axis=1)
    if empty.any():
        raise TooFewLabels(f"{int(empty.sum())} answered tasks have no annotator answers to weigh")
    frame = pd.DataFrame(matrix, columns=[str(a) for a in who])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = get_label_quality_multiannotator(frame, p, consensus_method=["majority_vote", "best_quality"],
                                                verbose=False)
    # The quality of the task's own answer: any annotator who gave it has that label's posterior score.
    detailed = info["detailed_label_quality"].to_numpy(dtype=float)
    same = matrix == labels[:, None]
    quality = np.where(same, detailed, -np.inf).max(axis=1)
    missing = ~np.isfinite(quality)  # the answer was nobody's (an audit-corrected task is trusted, so rare)
    quality[missing] = info["label_quality"]["consensus_quality_score"].to_numpy(dtype=float)[missing]
    best = info["label_quality"]["consensus_label_best_quality"].to_numpy(dtype=int)
    issues = best != labels
    stats = info["annotator_stats"]
    annotators = {}
    for a in who:
        row = stats.loc[str(a)]
        worst = row["worst_class"]
        annotators[a] = AnnotatorScore(quality=float(row["annotator_quality"]),
                                       agreement=float(row["agreement_with_consensus"]),
                                       labeled=int(row["num_examples_labeled"]),
                                       worst_class=None if pd.isna(worst) else classes[int(worst)].item())
    return np.clip(quality, 0.0, 1.0), issues, best, annotators, MULTI
