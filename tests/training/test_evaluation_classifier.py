"""The downstream-classifier gain protocol on a tiny imbalanced set."""

from __future__ import annotations

import pytest
from scipy import stats

from training.evaluation import classifier
from training.evaluation import known_mapping as km


def test_intervals_are_student_t_over_the_seeds() -> None:
    result = classifier.interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / 3**0.5
    assert result["mean"] == 2.0
    assert result["low"] == pytest.approx(2 - half) and result["high"] == pytest.approx(2 + half)
    assert classifier.interval([0.5]) == {"mean": 0.5, "low": None, "high": None}


def test_synthetic_minority_images_from_a_perfect_translator_raise_minority_recall() -> None:
    data = km.make_known_mapping(size=32, n_a=60, n_b=4, n_test=16, max_scale=3.0)
    synthetic = [km.cartoon(a) for a in data.a[:50]]  # what a perfect A->B generator would make
    result = classifier.classifier_gain(
        real_a=data.a, real_b=data.b, synthetic=synthetic, test_a=data.test_a, test_b=data.test_b,
        minority="B", seeds=(0, 1), cfg=classifier.ClassifierConfig(epochs=6),
    )
    assert result["counts"] == {"real_A": 60, "real_B": 4, "synthetic": 50, "test_per_class": 16}
    assert [s["seed"] for s in result["per_seed"]] == [0, 1]
    recall = result["summary"]["minority_recall"]
    assert recall["augmented"]["mean"] > recall["baseline"]["mean"]
    assert recall["gain"]["low"] <= recall["gain"]["mean"] <= recall["gain"]["high"]
    for entry in result["per_seed"]:
        for side in ("baseline", "augmented"):
            assert 0 <= entry[side]["balanced_accuracy"] <= 1


def test_the_protocol_refuses_missing_inputs() -> None:
    data = km.make_known_mapping(size=32, n_a=4, n_b=2, n_test=2)
    with pytest.raises(ValueError, match="minority"):
        classifier.classifier_gain(real_a=data.a, real_b=data.b, synthetic=data.b, test_a=data.test_a,
                                   test_b=data.test_b, minority="C")
    with pytest.raises(ValueError, match="no synthetic"):
        classifier.classifier_gain(real_a=data.a, real_b=data.b, synthetic=[], test_a=data.test_a,
                                   test_b=data.test_b, minority="B")
    with pytest.raises(ValueError, match="both domains"):
        classifier.classifier_gain(real_a=data.a, real_b=data.b, synthetic=data.b, test_a=data.test_a,
                                   test_b=[], minority="B")
