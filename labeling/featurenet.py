"""The networks behind image features (torch only; labeling/features.py imports this lazily).

* `SmallCNN`, trained from scratch on the project's own images with a self-supervised objective:
  predict which of four rotations (0°, 90°, 180°, 270°) an image was given (Gidaris et al. 2018,
  "Unsupervised representation learning by predicting image rotations"). To tell which way is up,
  the network must learn what the pile's images look like: horizons and faces, text lines, chart
  axes. Where the project has answers, a second head learns the choices too (refinement).
* `Backbone`, a torchvision ResNet whose weights come from a local file (never downloaded), its
  classifier cut off: the pooled features of the last stage.

Images arrive as uint8 arrays (N, H, W, 3); features leave as float32 (N, D).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROTATIONS = 4
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - MEAN) / STD


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Four strided 3×3 conv blocks (32 → 128 channels, /16 spatially), average and max pooling, a linear layer
    to `dim`: about 13 M multiply-adds per 64×64 image, so a CPU trains and embeds thousands a minute."""

    def __init__(self, dim: int, classes: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(_block(3, 32, 2), _block(32, 64, 2), _block(64, 128, 2), _block(128, 128, 2))
        self.project = nn.Linear(256, dim)
        self.rotation = nn.Linear(dim, ROTATIONS)
        self.classes = nn.Linear(dim, classes) if classes > 1 else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # (B, 128, H/16, W/16)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (B, 256)
        return self.project(pooled)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random shifted crop (reflect-padded by 1/8) and a random horizontal flip per batch half."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    x = padded[:, :, dy : dy + h, dx : dx + w]
    flip = torch.rand(b, generator=generator) < 0.5
    x[flip] = x[flip].flip(3)
    return x


def train_cnn(images: np.ndarray, labels: np.ndarray, *, classes: int, dim: int, steps: int, batch: int = 64,
              seed: int = 0, on_step: Callable[[int], None] | None = None) -> SmallCNN:
    """Train a SmallCNN on `images` to predict rotations, and the choice of those with a label (`labels` >= 0;
    -1 for none). Adam with a cosine learning rate; batch norm in training mode throughout."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    labeled = np.flatnonzero(labels >= 0)
    model = SmallCNN(dim, classes if len(labeled) else 0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        pick = rng.integers(0, len(images), size=min(batch, len(images)))
        x = _augment(to_tensor(images[pick]), generator)
        turns = torch.randint(0, ROTATIONS, (len(pick),), generator=generator)
        rotated = torch.empty_like(x)
        for k in range(ROTATIONS):
            which = turns == k
            rotated[which] = torch.rot90(x[which], k, dims=(2, 3))
        z = model.features(rotated)
        loss = F.cross_entropy(model.rotation(z), turns)
        if model.classes is not None:
            # Labeled images join every batch (a quarter of it), unrotated: the choice head learns from few.
            some = rng.choice(labeled, size=min(len(labeled), max(1, batch // 4)), replace=False)
            zl = model.features(_augment(to_tensor(images[some]), generator))
            loss = loss + F.cross_entropy(model.classes(zl), torch.from_numpy(labels[some]).long())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if on_step is not None:
            on_step(step)
    recalibrate(model, images, rng)
    return model.eval()


@torch.no_grad()
def recalibrate(model: SmallCNN, images: np.ndarray, rng: np.random.Generator, most: int = 4096) -> None:
    """Set batch norm's running statistics to the exact mean and variance over (up to `most` of) the pile.

    The running averages trail the last few hundred batches; after a short training they are still half
    their initial values, and the features read in eval mode lose what tells the kinds apart."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the passes below
    model.train()
    pick = rng.permutation(len(images))[:most]
    for start in range(0, len(pick), 256):
        model.features(to_tensor(images[np.sort(pick[start : start + 256])]))
    for norm in norms:
        norm.momentum = 0.1


@torch.no_grad()
def embed(features: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Features of `images` (N, H, W, 3) as float32 (N, D), averaged over the image and its mirror."""
    out = []
    for start in range(0, len(images), batch):
        x = to_tensor(images[start : start + batch])
        out.append(((features(x) + features(x.flip(3))) / 2).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def save(path: Path, model: SmallCNN, extra: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"state": model.state_dict(), **extra}, tmp)
    tmp.replace(path)


def load_cnn(path: Path) -> tuple[SmallCNN, dict[str, Any]]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = SmallCNN(saved["dim"], saved.get("classes", 0))
    model.load_state_dict(saved["state"])
    return model.eval(), saved


# --- a pretrained backbone from a local file ---------------------------------------------------

RESNET_LAYERS = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34/50", (3, 4, 23, 3): "resnet101",
                 (3, 8, 36, 3): "resnet152"}


class WeightsError(ValueError):
    """The weights file cannot be used; the message says why and what to do."""


def load_backbone(path: Path) -> nn.Module:
    """A torchvision ResNet (18, 34, 50, 101 or 152, told apart by the file's keys) from a state dict saved
    with `torch.save(model.state_dict())`, returning its pooled last-stage features."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    if not path.is_file():
        raise WeightsError(f"WINNOW_FEATURE_WEIGHTS names {path}, which is not a file; copy a torchvision ResNet "
                           "state dict there or unset it to train features on the project's images")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any failure to read is the same answer to the owner)
        raise WeightsError(f"WINNOW_FEATURE_WEIGHTS file {path.name} is not a readable torch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(str(k).startswith("layer1.") for k in state):
        raise WeightsError(f"WINNOW_FEATURE_WEIGHTS file {path.name} is not a torchvision ResNet state dict "
                           "(no layer1.* weights)")
    layers = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    if layers not in RESNET_LAYERS:
        raise WeightsError(f"WINNOW_FEATURE_WEIGHTS file {path.name} has blocks {layers}, not a ResNet 18-152")
    block = Bottleneck if any(k.endswith("conv3.weight") for k in state) else BasicBlock
    model = ResNet(block, list(layers))
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise WeightsError(f"WINNOW_FEATURE_WEIGHTS file {path.name} does not fit a ResNet: {exc}") from exc
    model.fc = nn.Identity()
    return model.eval()
