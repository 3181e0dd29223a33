"""Fréchet Inception Distance (Heusel et al. 2017) and Kernel Inception Distance (Bińkowski et al. 2018).

Both compare two sets of images through the features a fixed network gives them:

* FID fits a Gaussian to each set of features and takes the Fréchet distance between them,
  ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
* KID is the squared maximum mean discrepancy with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
  estimated without bias, averaged over random subsets (mean and standard deviation reported).
  Unlike FID it has an unbiased estimator, so it means something on the few hundred test images a
  split has.

The usual network is the Inception v3 of the TensorFlow FID code, ported to PyTorch by pytorch-fid.
Its weights cannot be downloaded at run time here: they are read from a local file named by
`WINNOW_INCEPTION_WEIGHTS` (docs/EVALUATION.md says how to get it once). Any other network works
through the `FeatureExtractor` shape: a module that maps (N, 3, H, W) floats in [0, 1] to (N, D).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

INCEPTION_ENV = "WINNOW_INCEPTION_WEIGHTS"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"


class FeatureExtractor(Protocol):
    """(N, 3, H, W) float in [0, 1] -> (N, D) features."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class InceptionWeightsMissing(RuntimeError):
    """The Inception weights file is not configured or not on disk."""


# --- statistics --------------------------------------------------------------------------------


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows of shape (N, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix, by eigendecomposition.

    Round-off can leave tiny negative eigenvalues in a covariance; they are clipped to zero rather
    than turning the root complex.
    """
    matrix = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for covariances S1, S2.

    S1 S2 is not symmetric, which is why a general sqrtm wobbles (and turns complex) on it. It is
    similar to the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), so both have the same eigenvalues,
    and the trace of the root is the sum of their square roots: no general sqrtm needed.
    """
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), in float64; never negative."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(distance, 0.0))  # round-off can make identical sets a hair below zero


def fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two sets of (N, D) features."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for every row pair, the kernel KID is defined with."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 between samples x (m, d) and y (n, d): the within-set sums leave out
    the diagonal (k(x_i, x_i)), which is what makes the estimator unbiased."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def kid(features1: np.ndarray, features2: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over `subsets` random subsets of each set,
    each of min(subset_size, len(set)) rows drawn without replacement (seeded, so repeatable)."""
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    size = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    values = np.array([
        mmd2_unbiased(x[rng.choice(x.shape[0], size, replace=False)], y[rng.choice(y.shape[0], size, replace=False)])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std())


# --- features ----------------------------------------------------------------------------------


def to_unit_batch(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images of one size to (N, 3, H, W) float in [0, 1]."""
    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])  # (N, H, W, 3) uint8
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255)


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, images: Iterable[Image.Image], *, batch_size: int = 32,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """(N, D) float64 features of the images; images in one batch must share a size."""
    rows: list[np.ndarray] = []
    batch: list[Image.Image] = []

    def flush() -> None:
        out = extractor(to_unit_batch(batch).to(device))
        rows.append(out.reshape(out.shape[0], -1).double().cpu().numpy())
        batch.clear()

    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not rows:
        raise ValueError("no images to extract features from")
    return np.concatenate(rows)


class InceptionFeatures(nn.Module):
    """The 2048-d pool3 features of the FID Inception v3: resize to 299 (bilinear), scale to [-1, 1]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # (N, 3, 299, 299)
        net = self.net
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
                      net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                      net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b,
                      net.Mixed_7c):
            x = layer(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # (N, 2048)


def inception_weights_path(path: str | Path | None = None) -> Path:
    """The configured weights file, or InceptionWeightsMissing saying how to provide it."""
    raw = path or os.environ.get(INCEPTION_ENV)
    if not raw:
        raise InceptionWeightsMissing(
            f"FID and KID need the Inception weights, which are never downloaded at run time: fetch "
            f"{INCEPTION_URL} once and set {INCEPTION_ENV} to its path (see docs/EVALUATION.md)"
        )
    resolved = Path(raw)
    if not resolved.is_file():
        raise InceptionWeightsMissing(
            f"{INCEPTION_ENV} names {resolved}, which is not a file: fetch {INCEPTION_URL} there (see docs/EVALUATION.md)"
        )
    return resolved


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionFeatures:
    """The FID Inception v3 with weights from a local file (`path`, else `WINNOW_INCEPTION_WEIGHTS`).

    The network is torchvision's Inception v3 with the pooling changes of the TensorFlow graph, as
    pytorch-fid defines them; only the download is left out.
    """
    from pytorch_fid import inception as fid_inception

    weights = inception_weights_path(path)
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    import pickle

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, KeyError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise InceptionWeightsMissing(
            f"{weights} is not the FID Inception state dict ({INCEPTION_FILE}): {str(exc)[:300]}"
        ) from exc
    return InceptionFeatures(net).to(device).eval().requires_grad_(False)


def fid_kid(extractor: FeatureExtractor, real: Iterable[Image.Image], fake: Iterable[Image.Image], *,
            device: str | torch.device = "cpu", kid_subsets: int = 100, kid_subset_size: int = 1000,
            seed: int = 0) -> dict[str, float]:
    """FID and KID (mean, std) between real and generated images, with their counts."""
    real_features = extract_features(extractor, real, device=device)
    fake_features = extract_features(extractor, fake, device=device)
    kid_mean, kid_std = kid(real_features, fake_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    return {"fid": fid(real_features, fake_features), "kid": kid_mean, "kid_std": kid_std,
            "n_real": int(real_features.shape[0]), "n_fake": int(fake_features.shape[0])}
