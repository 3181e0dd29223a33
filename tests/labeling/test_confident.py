"""The maths of likely label errors (labeling/confident.py) on synthetic features: well-separated Gaussian
clusters, one per class, with planted wrong labels and annotators of known accuracy. No database."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from labeling import confident
from labeling.suggestions import make_classifier


def clusters(n: int = 600, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, 16))
    truth = np.arange(n) % classes
    return centres[truth] + rng.normal(0, 1, (n, 16)), truth


def flip(truth: np.ndarray, rows: np.ndarray, classes: int = 3) -> np.ndarray:
    given = truth.copy()
    given[rows] = (truth[rows] + 1) % classes
    return given


def test_planted_flips_score_lowest_and_are_flagged():
    x, truth = clusters()
    wrong = np.array([5, 50, 123, 300, 480, 599])
    given = flip(truth, wrong) + 10  # label values need not start at 0: choice ids
    check = confident.check_labels(x, given, trusted=np.zeros(600, bool), groups=np.arange(600),
                                   make_model=make_classifier)
    assert check.method == confident.SINGLE and len(check.rows) == 600
    assert set(np.argsort(check.quality)[:6]) == set(wrong)
    # The flags cut at the estimated count per class, so a flip may fall just outside them.
    assert len(set(np.flatnonzero(check.issues)) & set(wrong)) >= 5 and check.issues.sum() <= 9
    assert (check.suggested[wrong] == truth[wrong] + 10).all()
    assert list(check.classes) == [10, 11, 12]
    estimate = confident.estimate_errors(given - 10, check.probabilities, thresholds=check.thresholds)
    assert 3 <= estimate <= 12


def test_trusted_rows_are_learned_from_and_never_scored_but_predicted_out_of_sample():
    x, truth = clusters(n=300)
    trusted = np.zeros(300, bool)
    trusted[:30] = True
    given = flip(truth, np.array([100, 200]))
    given[3] = (truth[3] + 1) % 3  # a trusted row "wrong" on purpose: held out, the model disagrees with it
    check = confident.check_labels(x, given, trusted=trusted, groups=np.arange(300), make_model=make_classifier)
    assert len(check.rows) == 270 and not set(check.rows) & set(range(30))
    assert (check.heldout, check.heldout_correct) == (30, 29)


def test_rows_of_one_image_share_a_fold():
    x, truth = clusters(n=200)
    x[101] = x[100]  # the same image in two tasks, one with a wrong answer
    given = flip(truth, np.array([100]))
    given[101] = given[100]
    groups = np.arange(200)
    groups[101] = 100
    apart = confident.check_labels(x, given, trusted=np.zeros(200, bool), groups=np.arange(200),
                                   make_model=make_classifier)
    together = confident.check_labels(x, given, trusted=np.zeros(200, bool), groups=groups,
                                      make_model=make_classifier)
    position = {int(r): i for i, r in enumerate(together.rows)}
    # Kept together, neither copy's wrong label is learned before it is predicted.
    assert together.quality[position[100]] <= apart.quality[position[100]]
    assert together.quality[position[100]] < 0.5


def test_crowdlab_scores_consensus_and_ranks_annotators_by_accuracy():
    rng = np.random.default_rng(3)
    x, truth = clusters(n=900, seed=3)
    accuracy = np.linspace(0.7, 0.97, 6)
    answers, final = [], truth.copy()
    for row in range(900):
        votes = []
        for a in rng.choice(6, 3, replace=False):
            label = truth[row] if rng.random() < accuracy[a] else (truth[row] + rng.integers(1, 3)) % 3
            votes.append(label)
            answers.append((row, int(a), int(label)))
        values, counts = np.unique(votes, return_counts=True)
        final[row] = values[counts.argmax()]
    check = confident.check_labels(x, final, trusted=np.zeros(900, bool), groups=np.arange(900),
                                   make_model=make_classifier, answers=answers, several=True)
    assert check.method == confident.MULTI
    wrong = final != truth
    assert wrong.sum() >= 5
    assert check.issues[wrong].mean() >= 0.8 and check.issues[~wrong].mean() <= 0.02
    assert (check.quality[wrong].mean() < check.quality[~wrong].mean())
    scores = [check.annotators[a].quality for a in range(6)]
    assert spearmanr(scores, accuracy).statistic >= 0.8
    assert all(check.annotators[a].labeled > 300 for a in range(6))


def test_several_without_any_overlap_falls_back_to_confident_learning():
    x, truth = clusters(n=120)
    answers = [(r, r % 4, int(truth[r])) for r in range(120)]
    check = confident.check_labels(x, truth, trusted=np.zeros(120, bool), groups=np.arange(120),
                                   make_model=make_classifier, answers=answers, several=True)
    assert check.method == confident.SINGLE
    assert set(check.annotators) == {0, 1, 2, 3} and all(s.agreement is None for s in check.annotators.values())


@pytest.mark.parametrize("labels, message", [
    (np.zeros(60, int), "fewer than two choices"),
    (np.array([0] * 56 + [1] * 4), "choice 1 has 4 labeled images"),
])
def test_too_few_labels_are_refused_with_the_reason(labels, message):
    x, _ = clusters(n=60)
    with pytest.raises(confident.TooFewLabels, match=message):
        confident.check_labels(x, labels, trusted=np.zeros(60, bool), groups=np.arange(60), make_model=make_classifier)


def test_too_few_untrusted_rows_are_refused():
    x, truth = clusters(n=60)
    trusted = np.ones(60, bool)
    trusted[:3] = False
    with pytest.raises(confident.TooFewLabels, match="3 answered tasks to check"):
        confident.check_labels(x, truth, trusted=trusted, groups=np.arange(60), make_model=make_classifier)
