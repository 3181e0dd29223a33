"""The statistics behind quality control, as pure functions (no Django).

- `wilson` and `clopper_pearson`: 95% intervals for an audit's error rate. Wilson is what the
  acceptance decision uses (good coverage, never outside [0, 1]); Clopper–Pearson is the exact,
  conservative interval owners sometimes ask for, shown beside it.
- `clean_audits_needed` and `sample_size_for_width`: audit planning, shown before a sample is drawn.
- `majority`: the consensus of k answers, with ties reported as such.
- `dawid_skene`: the EM estimate of Dawid & Skene (1979), "Maximum likelihood estimation of observer
  error-rates using the EM algorithm", which weighs each annotator by an estimated confusion matrix.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import beta, norm

Z95 = float(norm.ppf(0.975))  # 1.95996…


def wilson(errors: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for errors/n; (0, 1) when nothing was audited."""
    if n == 0:
        return 0.0, 1.0
    p = errors / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(errors: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial (Clopper–Pearson) interval for errors/n."""
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if errors == 0 else float(beta.ppf(alpha / 2, errors, n - errors + 1))
    high = 1.0 if errors == n else float(beta.ppf(1 - alpha / 2, errors + 1, n - errors))
    return low, high


def clean_audits_needed(max_error_rate: float, z: float = Z95) -> int:
    """How many audits without a single error put Wilson's upper bound at or under `max_error_rate`.

    With 0 errors the upper bound is z²/(n + z²), so n ≥ z²(1 − p)/p: 381 clean audits claim "under 1%".
    """
    if not 0 < max_error_rate < 1:
        raise ValueError("max_error_rate must be between 0 and 1")
    return math.ceil(z * z * (1 - max_error_rate) / max_error_rate - 1e-9)


def sample_size_for_width(expected_error_rate: float, width: float, z: float = Z95, limit: int = 1_000_000) -> int:
    """The smallest n whose Wilson interval, at the expected error rate, is at most `width` wide."""
    if not 0 < width < 1:
        raise ValueError("width must be between 0 and 1")
    if not 0 <= expected_error_rate < 1:
        raise ValueError("expected_error_rate must be between 0 and 1")
    low, high = 1, limit
    if _width(expected_error_rate, high, z) > width:
        return limit
    while low < high:
        mid = (low + high) // 2
        if _width(expected_error_rate, mid, z) <= width:
            high = mid
        else:
            low = mid + 1
    return low


def _width(p: float, n: int, z: float) -> float:
    lo, hi = wilson(round(p * n), n, z)
    return hi - lo


@dataclass(frozen=True)
class Majority:
    answer: Hashable | None  # None on a tie
    agreement: float  # share of answers that chose the top answer
    tied: bool


def majority(answers: Sequence[Hashable]) -> Majority:
    """Majority vote; a tie for first place has no answer (the caller asks one more annotator)."""
    if not answers:
        return Majority(None, 0.0, False)
    ranked = Counter(answers).most_common()
    top, count = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == count
    return Majority(None if tied else top, count / len(answers), tied)


@dataclass
class DawidSkene:
    labels: list[Hashable]
    posteriors: dict[Hashable, dict[Hashable, float]]  # item → label → probability
    confusion: dict[Hashable, np.ndarray]  # annotator → (true label × given label) row-stochastic
    priors: dict[Hashable, float]
    iterations: int

    def answer(self, item: Hashable) -> Hashable:
        post = self.posteriors[item]
        return max(post, key=post.__getitem__)

    def confidence(self, item: Hashable) -> float:
        return max(self.posteriors[item].values())


def dawid_skene(
    triples: Iterable[tuple[Hashable, Hashable, Hashable]], max_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01
) -> DawidSkene:
    """Estimate each item's true label from (item, annotator, label) triples by EM.

    Initialised from majority-vote soft counts; the M-step estimates class priors and a confusion
    matrix per annotator (with a little additive smoothing so an annotator seen on one class only
    does not get probability 0 elsewhere); the E-step recomputes the item posteriors in log space.

    Answers are held as one sparse (annotator × given label) × item count matrix, so memory grows
    with the number of answers, not with items × annotators: a project of 100k tasks and 200
    annotators needs a few megabytes, where a dense count tensor would need gigabytes.
    """
    triples = list(triples)
    items = sorted({t[0] for t in triples}, key=str)
    workers = sorted({t[1] for t in triples}, key=str)
    labels = sorted({t[2] for t in triples}, key=str)
    i_of = {x: i for i, x in enumerate(items)}
    w_of = {x: i for i, x in enumerate(workers)}
    l_of = {x: i for i, x in enumerate(labels)}
    n_items, n_workers, n_labels = len(items), len(workers), len(labels)
    item_idx = np.fromiter((i_of[t[0]] for t in triples), dtype=np.int64, count=len(triples))
    # Row key of an answer: (annotator, given label) flattened.
    key_idx = np.fromiter((w_of[t[1]] * n_labels + l_of[t[2]] for t in triples), dtype=np.int64, count=len(triples))
    answers = sparse.csr_matrix(
        (np.ones(len(triples)), (key_idx, item_idx)), shape=(n_workers * n_labels, n_items)
    )  # duplicates are summed: an annotator answering an item twice counts twice
    by_item = answers.T.tocsr()  # items × (annotator, given label)
    # E-step seed: majority vote as soft labels (item × label vote shares).
    t = np.asarray(by_item @ sparse.kron(np.ones((n_workers, 1)), sparse.identity(n_labels)).toarray())
    t = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)
    iterations = 0
    confusion = np.zeros((n_workers, n_labels, n_labels))
    priors = np.full(n_labels, 1 / max(n_labels, 1))
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported in the result
        priors = (t.sum(axis=0) + smoothing) / (n_items + smoothing * n_labels)
        # (annotator, given) × true → confusion[w, true, given], rows normalised over `given`.
        counts = np.asarray(answers @ t).reshape(n_workers, n_labels, n_labels).transpose(0, 2, 1)
        confusion = counts + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        log_conf = np.log(confusion).transpose(0, 2, 1).reshape(n_workers * n_labels, n_labels)
        log_post = np.log(priors)[None, :] + np.asarray(by_item @ log_conf)
        log_post -= log_post.max(axis=1, keepdims=True)
        new_t = np.exp(log_post)
        new_t /= new_t.sum(axis=1, keepdims=True)
        delta = np.abs(new_t - t).max()
        t = new_t
        if delta < tol:
            break
    posteriors = {items[i]: {labels[k]: float(t[i, k]) for k in range(n_labels)} for i in range(n_items)}
    return DawidSkene(
        labels=labels,
        posteriors=posteriors,
        confusion={workers[w]: confusion[w] for w in range(n_workers)},
        priors={labels[k]: float(priors[k]) for k in range(n_labels)},
        iterations=iterations,
    )


def stratified_allocation(sizes: dict[Hashable, int], n: int) -> dict[Hashable, int]:
    """Split a sample of n across strata in proportion to their sizes (largest remainder).

    Every non-empty stratum gets at least one when n allows, so a rare answer is never left unaudited.
    """
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0:
        return {k: 0 for k in sizes}
    alloc = {k: 0 for k in sizes}
    nonempty = [k for k, s in sizes.items() if s > 0]
    if n >= len(nonempty):
        for k in nonempty:
            alloc[k] = 1
    remaining = n - sum(alloc.values())
    if remaining > 0:
        quotas = {k: remaining * sizes[k] / total for k in sizes}
        for k in sizes:
            alloc[k] += min(int(quotas[k]), sizes[k] - alloc[k])
        left = n - sum(alloc.values())
        order = sorted(sizes, key=lambda k: (quotas[k] - int(quotas[k])), reverse=True)
        while left > 0:
            progressed = False
            for k in order:
                if left and alloc[k] < sizes[k]:
                    alloc[k] += 1
                    left -= 1
                    progressed = True
            if not progressed:
                break
    return alloc


def median(values: Iterable[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def confusion_matrix(pairs: Iterable[tuple[Hashable, Hashable]], labels: Sequence[Hashable]) -> list[list[int]]:
    """Rows: the right answer; columns: the answer given."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for truth, given in pairs:
        if truth in index and given in index:
            matrix[index[truth]][index[given]] += 1
    return matrix


def group_accuracy(pairs: Iterable[tuple[Hashable, bool]]) -> dict[Hashable, tuple[int, int]]:
    """key → (correct, total)."""
    out: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for key, correct in pairs:
        out[key][0] += int(correct)
        out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}
