"""Downstream-classifier gain: do a run's synthetic minority images help a classifier?

The class-imbalance protocol. For each seed, a small CNN learns to tell A from B twice, with the
same seed, schedule and real images:

1. *baseline*: the imbalanced real training images only;
2. *augmented*: the same, plus synthetic images of the minority domain (a run's translations of
   majority images).

Both are scored on one held-out, balanced test set (the larger class subsampled to the smaller)
by balanced accuracy and minority recall. Over the seeds we report means, 95% Student-t intervals
and the paired gain (augmented - baseline, same seed), whose interval excluding zero is the claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

LABELS = {"A": 0, "B": 1}


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: enough to separate two image styles, quick on a CPU."""

    def __init__(self, width: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))  # (N, 3, H, W) -> (N, classes)


def to_batch(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """(N, 3, size, size) floats in [-1, 1]."""
    arrays = np.stack([np.asarray(i.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for i in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


@dataclass
class ClassifierConfig:
    size: int = 32
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    width: int = 16


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, seed: int, cfg: ClassifierConfig) -> SmallCNN:
    """Plain cross-entropy with Adam and random flips; no reweighting, so the imbalance is felt."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = SmallCNN(cfg.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), cfg.batch_size):
            index = order[start: start + cfg.batch_size]
            if len(index) < 2:  # batch norm needs two samples
                continue
            batch = x[index]
            flip = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            loss = nn.functional.cross_entropy(model(batch), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, minority: str) -> dict[str, float]:
    """Balanced accuracy (mean of per-class recalls) and the minority class's recall."""
    predicted = torch.cat([model(x[i: i + 256]).argmax(1) for i in range(0, len(x), 256)])
    recalls = {name: float((predicted[y == label] == label).float().mean()) for name, label in LABELS.items()}
    return {"balanced_accuracy": float(np.mean(list(recalls.values()))), "minority_recall": recalls[minority]}


def interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | None]:
    """Mean and the Student-t confidence interval of the mean (None with fewer than two values)."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return {"mean": mean, "low": None, "high": None}
    half = float(stats.t.ppf((1 + confidence) / 2, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
    return {"mean": mean, "low": mean - half, "high": mean + half}


def balanced_test(test_a: Sequence[Image.Image], test_b: Sequence[Image.Image], seed: int = 0
                  ) -> tuple[list[Image.Image], list[Image.Image]]:
    """Subsample the larger test class to the smaller one's size (seeded)."""
    n = min(len(test_a), len(test_b))
    if n < 1:
        raise ValueError("the test set needs images of both domains")
    rng = np.random.default_rng(seed)
    pick = lambda images: [images[i] for i in sorted(rng.choice(len(images), n, replace=False))]  # noqa: E731
    return pick(test_a), pick(test_b)


def classifier_gain(*, real_a: Sequence[Image.Image], real_b: Sequence[Image.Image],
                    synthetic: Sequence[Image.Image], test_a: Sequence[Image.Image], test_b: Sequence[Image.Image],
                    minority: str, seeds: Sequence[int] = (0, 1, 2), cfg: ClassifierConfig | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the protocol; returns per-seed scores and, per metric, baseline, augmented and gain intervals."""
    if minority not in LABELS:
        raise ValueError('minority must be "A" or "B"')
    if not real_a or not real_b:
        raise ValueError("the classifier needs real training images of both domains")
    if not synthetic:
        raise ValueError("no synthetic minority images to add")
    cfg = cfg or ClassifierConfig()
    x_real = to_batch([*real_a, *real_b], cfg.size)
    y_real = torch.tensor([0] * len(real_a) + [1] * len(real_b))
    x_aug = torch.cat([x_real, to_batch(synthetic, cfg.size)])
    y_aug = torch.cat([y_real, torch.full((len(synthetic),), LABELS[minority])])
    bal_a, bal_b = balanced_test(test_a, test_b)
    x_test = to_batch([*bal_a, *bal_b], cfg.size)
    y_test = torch.tensor([0] * len(bal_a) + [1] * len(bal_b))

    per_seed = []
    for done, seed in enumerate(seeds):
        baseline = score(train_classifier(x_real, y_real, seed=seed, cfg=cfg), x_test, y_test, minority)
        augmented = score(train_classifier(x_aug, y_aug, seed=seed, cfg=cfg), x_test, y_test, minority)
        per_seed.append({"seed": seed, "baseline": baseline, "augmented": augmented})
        if on_progress:
            on_progress(done + 1, len(seeds))
    summary = {}
    for metric in ("balanced_accuracy", "minority_recall"):
        base = [s["baseline"][metric] for s in per_seed]
        aug = [s["augmented"][metric] for s in per_seed]
        summary[metric] = {"baseline": interval(base), "augmented": interval(aug),
                           "gain": interval([a - b for a, b in zip(aug, base, strict=True)])}
    return {
        "minority": minority, "seeds": list(seeds), "summary": summary, "per_seed": per_seed,
        "counts": {"real_A": len(real_a), "real_B": len(real_b), "synthetic": len(synthetic),
                   "test_per_class": len(bal_a)},
        "config": vars(cfg),
    }
