"""FID and KID statistics checked against float64 references computed here, on features of a small net."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn

from training.evaluation import fid


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


def random_images(n: int, seed: int, size: int = 24, cast: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        array[..., cast] = array[..., cast] // 2
        images.append(Image.fromarray(array))
    return images


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    net = small_net()
    return (fid.extract_features(net, random_images(60, 1), batch_size=7),
            fid.extract_features(net, random_images(50, 2, cast=1), batch_size=16))


def reference_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    mean = np.zeros(x.shape[1])
    for row in x:
        mean += row
    mean /= n
    cov = np.zeros((x.shape[1], x.shape[1]))
    for row in x:
        cov += np.outer(row - mean, row - mean)
    return mean, cov / (n - 1)


def test_features_come_out_float64_one_row_per_image_whatever_the_batch_size() -> None:
    net, images = small_net(), random_images(10, 3)
    one = fid.extract_features(net, images, batch_size=1)
    many = fid.extract_features(net, images, batch_size=32)
    assert one.shape == (10, 12) and one.dtype == np.float64
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_mean_and_covariance_match_a_float64_loop(features: tuple[np.ndarray, np.ndarray]) -> None:
    mean, cov = fid.feature_statistics(features[0])
    ref_mean, ref_cov = reference_statistics(features[0])
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-14)


def test_the_psd_square_root_squares_back_and_matches_scipy(features: tuple[np.ndarray, np.ndarray]) -> None:
    _, cov = fid.feature_statistics(features[0])
    root = fid.sqrtm_psd(cov)
    np.testing.assert_allclose(root @ root, cov, atol=1e-10)
    np.testing.assert_allclose(root, np.real(scipy.linalg.sqrtm(cov)), atol=1e-8)


def test_frechet_distance_matches_the_scipy_sqrtm_formula(features: tuple[np.ndarray, np.ndarray]) -> None:
    mu1, s1 = reference_statistics(features[0])
    mu2, s2 = reference_statistics(features[1])
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    reference = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert reference > 0
    assert fid.fid(features[0], features[1]) == pytest.approx(reference, rel=1e-7)


def test_frechet_distance_has_the_closed_form_of_gaussians() -> None:
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2. Same covariance, shifted mean: |shift|^2.
    assert fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(5.0)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert fid.frechet_distance(np.zeros(2), cov, np.array([3.0, 4.0]), cov) == pytest.approx(25.0)


def test_identical_sets_are_at_distance_zero_even_with_a_singular_covariance(features: tuple[np.ndarray, np.ndarray]) -> None:
    few = features[0][:5]  # 5 rows in 12 dimensions: a rank-deficient covariance
    assert fid.fid(few, few) == pytest.approx(0.0, abs=1e-9)


def test_mismatched_statistics_are_refused() -> None:
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="at least 2"):
        fid.feature_statistics(np.zeros((1, 4)))


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_estimator_matches_a_brute_force_loop(features: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = features[0][:30], features[1][:25]
    assert fid.mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-9, abs=1e-12)


def test_kid_over_subsets_averages_the_estimator_on_the_same_draws(features: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = features
    mean, std = fid.kid(x, y, subsets=5, subset_size=20, seed=3)
    rng = np.random.default_rng(3)
    values = [brute_force_mmd2(x[rng.choice(len(x), 20, replace=False)], y[rng.choice(len(y), 20, replace=False)])
              for _ in range(5)]
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values), rel=1e-6)
    # Whole sets as the only subset: the plain estimator, with no spread.
    whole, spread = fid.kid(x[:50], y, subsets=1, subset_size=10_000)
    assert whole == pytest.approx(fid.mmd2_unbiased(x[:50], y), rel=1e-9) and spread == 0


def test_kid_is_near_zero_for_two_draws_of_one_distribution_and_positive_across() -> None:
    net = small_net()
    same1 = fid.extract_features(net, random_images(80, 11))
    same2 = fid.extract_features(net, random_images(80, 12))
    other = fid.extract_features(net, random_images(80, 13, cast=2))
    within, _ = fid.kid(same1, same2, subsets=20, subset_size=50)
    across, _ = fid.kid(same1, other, subsets=20, subset_size=50)
    assert abs(within) < across


def test_fid_kid_reports_both_metrics_and_counts() -> None:
    result = fid.fid_kid(small_net(), random_images(20, 5), random_images(15, 6, cast=2), kid_subsets=3)
    assert set(result) == {"fid", "kid", "kid_std", "n_real", "n_fake"}
    assert result["n_real"] == 20 and result["n_fake"] == 15 and result["fid"] > 0


def test_inception_is_refused_clearly_when_no_weights_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    with pytest.raises(fid.InceptionWeightsMissing, match="WINNOW_INCEPTION_WEIGHTS"):
        fid.load_inception()


def test_inception_is_refused_clearly_when_the_file_is_missing_or_wrong(tmp_path: Path) -> None:
    with pytest.raises(fid.InceptionWeightsMissing, match="not a file"):
        fid.load_inception(tmp_path / "absent.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(fid.InceptionWeightsMissing, match="is not the FID Inception state dict"):
        fid.load_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(fid.InceptionWeightsMissing):
        fid.load_inception(garbage)


def test_inception_loads_a_state_dict_of_the_fid_architecture(tmp_path: Path) -> None:
    from pytorch_fid import inception as reference

    # Same architecture as the published file, random weights: proves the loader, not the numbers.
    net = reference._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = reference.FIDInceptionA(192, pool_features=32)
    net.Mixed_7c = reference.FIDInceptionE_2(2048)
    path = tmp_path / fid.INCEPTION_FILE
    torch.save(net.state_dict(), path)
    extractor = fid.load_inception(path)
    out = extractor(torch.rand(2, 3, 40, 40))
    assert out.shape == (2, 2048) and bool(torch.isfinite(out).all())
    assert not math.isnan(float(out.sum()))
