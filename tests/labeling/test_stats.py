"""The statistics against hand-computed values."""

import math
import random

import pytest

from labeling import stats


def test_one_error_in_two_hundred_gives_the_interval_owners_quote():
    # By hand: p = 0.005, z² = 3.8415; centre = (p + z²/400) / (1 + z²/200) = 0.014328,
    # half-width = z·sqrt(p(1-p)/200 + z²/160000) / (1 + z²/200) = 0.013445.
    low, high = stats.wilson(1, 200)
    assert low == pytest.approx(0.000883, abs=2e-6)
    assert high == pytest.approx(0.027774, abs=2e-6)
    cp_low, cp_high = stats.clopper_pearson(1, 200)
    assert cp_low == pytest.approx(1 - 0.975 ** (1 / 200), rel=1e-6)  # closed form when errors = 1
    assert cp_high == pytest.approx(0.02754, abs=2e-5)


def test_wilson_matches_its_closed_form_with_no_errors():
    z = stats.Z95
    for n in (1, 10, 381):
        assert stats.wilson(0, n) == pytest.approx((0.0, z * z / (n + z * z)))
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.wilson(5, 5)[1] == 1.0


def test_clean_audits_needed_is_the_smallest_sufficient_sample():
    n = stats.clean_audits_needed(0.01)
    assert n == 381
    assert stats.wilson(0, n)[1] <= 0.01 < stats.wilson(0, n - 1)[1]
    with pytest.raises(ValueError):
        stats.clean_audits_needed(0)


def test_sample_size_for_width_reaches_the_width_and_no_smaller_n_does():
    n = stats.sample_size_for_width(0.05, 0.04)
    lo, hi = stats.wilson(round(0.05 * n), n)
    assert hi - lo <= 0.04
    lo, hi = stats.wilson(round(0.05 * (n - 1)), n - 1)
    assert hi - lo > 0.04


def test_majority_reports_ties_and_agreement():
    assert stats.majority(["a", "a", "b"]) == stats.Majority("a", 2 / 3, False)
    assert stats.majority(["a", "b"]) == stats.Majority(None, 0.5, True)
    assert stats.majority(["a", "b", "b", "a", "c"]).tied
    assert stats.majority([]) == stats.Majority(None, 0.0, False)


def test_stratified_allocation_is_proportional_sums_to_n_and_keeps_rare_answers():
    alloc = stats.stratified_allocation({"A": 900, "B": 90, "C": 10}, 100)
    assert sum(alloc.values()) == 100
    assert alloc["A"] >= 88 and alloc["B"] >= 8 and alloc["C"] >= 1
    assert stats.stratified_allocation({"A": 3, "B": 0}, 10) == {"A": 3, "B": 0}


def test_dawid_skene_recovers_the_truth_better_than_majority_vote():
    """Two careful annotators (95%) and three careless ones who answer 'x' 70% of the time regardless."""
    rng = random.Random(7)
    labels = ["x", "y", "z"]
    truth = {i: rng.choice(labels) for i in range(300)}
    triples = []
    for item, true in truth.items():
        for worker in ("good1", "good2"):
            triples.append((item, worker, true if rng.random() < 0.95 else rng.choice([lab for lab in labels if lab != true])))
        for worker in ("lazy1", "lazy2", "lazy3"):
            triples.append((item, worker, "x" if rng.random() < 0.7 else rng.choice(labels)))
    by_item = {}
    for item, _worker, label in triples:
        by_item.setdefault(item, []).append(label)
    mv_correct = sum(stats.majority(v).answer == truth[i] for i, v in by_item.items())
    estimate = stats.dawid_skene(triples)
    ds_correct = sum(estimate.answer(i) == truth[i] for i in truth)
    assert ds_correct > mv_correct + 30
    assert ds_correct / len(truth) > 0.9
    # The careful annotators' estimated confusion matrices are near-diagonal.
    assert min(estimate.confusion["good1"].diagonal()) > 0.85
    assert math.isclose(sum(estimate.priors.values()), 1.0)


def test_median_and_confusion_matrix():
    assert stats.median([3, 1, 2]) == 2 and stats.median([4, 1, 2, 3]) == 2.5 and stats.median([]) is None
    assert stats.confusion_matrix([("a", "a"), ("a", "b"), ("b", "b")], ["a", "b"]) == [[1, 1], [0, 1]]
