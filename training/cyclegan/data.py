"""Unpaired image data for CycleGAN: two lists of files, A and B, read in random pairs.

Training pairs are random (the paper's data is unpaired): an epoch walks max(|A|, |B|) positions,
a shuffled A image and a uniformly drawn B image at each, like the reference implementation.
Each image is decoded, resized to load_size x load_size (bicubic), randomly cropped to image_size
and randomly flipped. Two choices keep an accelerator fed:

* JPEG decoding uses Pillow's draft mode, which decodes straight at 1/2, 1/4 or 1/8 scale when the
  file is much larger than load_size; that is most of the cost for photographs.
* Workers hand over uint8 tensors; `to_model_range` turns them into [-1, 1] floats on the device.
  A quarter of the bytes cross the (pinned) host-to-device copy compared with float32.

The sampler is indexed by global step, so a resumed run continues the same sequence of batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

PathLike = str | Path


@dataclass
class Domains:
    """The training images of each domain, as file paths."""

    a: Sequence[PathLike]
    b: Sequence[PathLike]

    def check(self, batch_size: int, world_size: int = 1) -> None:
        """Raise ValueError if a domain is too small to make one batch."""
        for name, paths in (("A", self.a), ("B", self.b)):
            if len(paths) == 0:
                raise ValueError(f"domain {name} has no images")
        if max(len(self.a), len(self.b)) < batch_size * world_size:
            raise ValueError(f"need at least {batch_size * world_size} images in the larger domain for one batch")


def load_image(path: PathLike, size: int | None = None, channels: int = 3) -> Image.Image:
    """Decode an image file as RGB (or L for one channel), at least `size` pixels on each side if given."""
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as image:
        if size is not None and image.format == "JPEG":
            image.draft(mode, (size, size))  # DCT-domain downscale: never below the requested size
        return image.convert(mode)


def pil_to_uint8(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (C, H, W) uint8


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] to float32 in [-1, 1] (the generators end in tanh)."""
    return images.float().div_(127.5).sub_(1.0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) float in [-1, 1] to a PIL image."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    array = array.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def train_transform(image: Image.Image, load_size: int, crop_size: int, flip: bool) -> torch.Tensor:
    """Resize to load_size square, random crop_size crop, random horizontal flip; returns uint8 (C, H, W)."""
    image = image.resize((load_size, load_size), Image.Resampling.BICUBIC)
    x = int(torch.randint(0, load_size - crop_size + 1, ()).item())
    y = int(torch.randint(0, load_size - crop_size + 1, ()).item())
    image = image.crop((x, y, x + crop_size, y + crop_size))
    if flip and torch.rand(()).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return pil_to_uint8(image)


def eval_tensor(path: PathLike, size: int, channels: int = 3) -> torch.Tensor:
    """Deterministic view of an image for samples: resized to size x size, float (C, H, W) in [-1, 1]."""
    image = load_image(path, size, channels).resize((size, size), Image.Resampling.BICUBIC)
    return to_model_range(pil_to_uint8(image))


class UnpairedDataset(Dataset):
    """Indexed by (a_index, b_index) pairs that the sampler draws; returns two uint8 (C, H, W) crops."""

    def __init__(
        self, domains: Domains, load_size: int, crop_size: int, flip: bool = True, channels: tuple[int, int] = (3, 3)
    ) -> None:
        self.a = [str(p) for p in domains.a]
        self.b = [str(p) for p in domains.b]
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip
        self.channels = channels

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        ia, ib = index
        a = load_image(self.a[ia], self.load_size, self.channels[0])
        b = load_image(self.b[ib], self.load_size, self.channels[1])
        return (
            train_transform(a, self.load_size, self.crop_size, self.flip),
            train_transform(b, self.load_size, self.crop_size, self.flip),
        )


class UnpairedBatchSampler(Sampler[list[tuple[int, int]]]):
    """An endless stream of batches of (a_index, b_index), addressed by global step.

    Epoch e shuffles A with a generator seeded by (seed, e) and draws B uniformly, so batch number
    `step` is the same whether the run got there in one go or resumed. With several processes
    (DDP) each rank takes its own slice of every global batch.
    """

    def __init__(
        self, n_a: int, n_b: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n_a, self.n_b = n_a, n_b
        self.batch_size, self.seed = batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self.steps_per_epoch = max(n_a, n_b) // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise ValueError("not enough images for one batch")

    def _epoch_pairs(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = max(self.n_a, self.n_b)
        order = torch.randperm(n, generator=generator) % self.n_a
        b = torch.randint(0, self.n_b, (n,), generator=generator)
        return order, b

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        epoch, pairs = -1, None
        while True:
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                pairs = self._epoch_pairs(epoch)
            assert pairs is not None
            start = (step % self.steps_per_epoch) * self.batch_size * self.world_size + self.rank * self.batch_size
            a, b = pairs[0][start : start + self.batch_size], pairs[1][start : start + self.batch_size]
            yield list(zip(a.tolist(), b.tolist(), strict=True))
            step += 1


def make_loader(
    domains: Domains,
    *,
    load_size: int,
    crop_size: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    flip: bool = True,
    channels: tuple[int, int] = (3, 3),
    num_workers: int = 4,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[DataLoader, int]:
    """An endless loader of (a, b) uint8 batches (B, C, H, W), and the number of steps per epoch."""
    domains.check(batch_size, world_size)
    sampler = UnpairedBatchSampler(len(domains.a), len(domains.b), batch_size, seed, start_step, rank, world_size)
    dataset = UnpairedDataset(domains, load_size, crop_size, flip, channels)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # Workers draw crops and flips from torch's RNG; seeding it per run makes runs repeatable.
        generator=torch.Generator().manual_seed(seed + start_step),
    )
    return loader, sampler.steps_per_epoch
