"""Dawid–Skene at project scale, and its edge cases (pure statistics, no database)."""

import random

import pytest

from labeling import stats


def planted(n_items: int, n_workers: int, overlap: int, seed: int = 11) -> tuple[dict[int, str], list[tuple[int, str, str]]]:
    """Items with a known answer; each is labeled by `overlap` random annotators of mixed reliability."""
    rng = random.Random(seed)
    labels = ["a", "b", "c"]
    truth = {i: rng.choice(labels) for i in range(n_items)}
    reliability = {f"w{w}": 0.55 + 0.4 * (w % 5) / 4 for w in range(n_workers)}  # 55% … 95%
    triples = []
    for item, true in truth.items():
        for worker in rng.sample(sorted(reliability), overlap):
            given = true if rng.random() < reliability[worker] else rng.choice([x for x in labels if x != true])
            triples.append((item, worker, given))
    return truth, triples


def test_dawid_skene_handles_a_project_of_many_items_and_annotators():
    # 20k items × 200 annotators would be a 12-million-cell dense count tensor; the sparse form holds 60k answers.
    truth, triples = planted(20_000, 200, 3)
    estimate = stats.dawid_skene(triples, max_iter=50)
    accuracy = sum(estimate.answer(i) == truth[i] for i in truth) / len(truth)
    by_item: dict[int, list[str]] = {}
    for item, _worker, label in triples:
        by_item.setdefault(item, []).append(label)
    majority = sum(stats.majority(v).answer == truth[i] for i, v in by_item.items()) / len(truth)
    assert accuracy > majority
    assert accuracy > 0.85
    # A 95% annotator's estimated confusion matrix is near-diagonal; a 55% one's is not.
    assert min(estimate.confusion["w4"].diagonal()) > 0.85
    assert max(estimate.confusion["w0"].diagonal()) < 0.7


def test_dawid_skene_posteriors_are_distributions_and_a_unanimous_item_is_certain():
    triples = [(1, "u", "a"), (1, "v", "a"), (1, "w", "a"), (2, "u", "b"), (2, "v", "b"), (2, "w", "a")]
    estimate = stats.dawid_skene(triples)
    for item in (1, 2):
        assert sum(estimate.posteriors[item].values()) == pytest.approx(1.0)
    assert estimate.answer(1) == "a" and estimate.confidence(1) > 0.9
    assert estimate.labels == ["a", "b"]


def test_dawid_skene_with_one_label_only_does_not_divide_by_zero():
    estimate = stats.dawid_skene([(1, "u", "a"), (2, "v", "a")])
    assert estimate.answer(1) == "a" and estimate.confidence(2) == pytest.approx(1.0)
