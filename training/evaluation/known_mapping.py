"""A benchmark whose true A->B mapping is known: photographs (A) and a fixed filter of photographs (B).

CycleGAN is trained on unpaired data, so its output usually has no ground truth. Here it does:
domain B is a deterministic image filter applied to photographs (by default a "cartoon" look:
edge-preserving smoothing, colour quantisation, dark edges; or `colour_grade`, a global "teal and
orange" film grade), so for a held-out photograph `a` the
right answer of G_AB is `filter(a)`, and PSNR and SSIM say how close a run gets. For B->A the
target is `a` itself, which measures how much of the photograph the filter left recoverable.

The photographs are the sample images that scikit-image and scikit-learn ship inside their
packages (read from disk, never downloaded). Each photograph is cut into a grid of cells, and
every cell belongs to exactly one pool (A train, B train or test), so no pixel of a B image was
ever seen as an A image, and no test crop overlaps a training crop. Crops are random in position
and scale within their cell and resized to the requested size; a seed makes the set repeatable.

Any callable from an RGB PIL image to an RGB PIL image of the same size can replace the filter.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ImageFilter = Callable[[Image.Image], Image.Image]
Translate = Callable[[Image.Image], Image.Image]

# Colour photographs of natural scenes the packages ship. The stereo pair's right view is left out:
# it shows the same scene as the left one, which would leak content between the A and B pools.
SAMPLE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage.data", "astronaut.png"),
    ("skimage.data", "chelsea.png"),
    ("skimage.data", "coffee.png"),
    ("skimage.data", "rocket.jpg"),
    ("skimage.data", "motorcycle_left.png"),
    ("sklearn.datasets.images", "china.jpg"),
    ("sklearn.datasets.images", "flower.jpg"),
)
POOLS = ("A", "B", "test")


# --- filters -----------------------------------------------------------------------------------


def cartoon(image: Image.Image, *, levels: int = 8, edge_threshold: float = 0.1, edge_darkness: float = 0.15
            ) -> Image.Image:
    """Deterministic cartoon look: bilateral smoothing, `levels` values per channel, darkened Sobel edges."""
    from skimage import color, filters, restoration

    x = np.asarray(image.convert("RGB"), dtype=np.float64) / 255  # (H, W, 3)
    smooth = restoration.denoise_bilateral(x, sigma_color=0.1, sigma_spatial=3, channel_axis=-1)
    out = np.round(smooth * (levels - 1)) / (levels - 1)
    edges = filters.sobel(color.rgb2gray(smooth)) > edge_threshold
    out[edges] *= edge_darkness
    return Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8))


def colour_grade(image: Image.Image, *, contrast: float = 4.0, saturation: float = 0.45, tone: float = 0.45,
                 shadows: tuple[float, float, float] = (0.0, 0.45, 0.55),
                 highlights: tuple[float, float, float] = (1.0, 0.6, 0.25)) -> Image.Image:
    """Deterministic "teal and orange" film grade, the same function of each pixel's colour everywhere:
    an S-shaped tone curve (tanh of slope `contrast` about mid-grey, rescaled to keep black and white),
    less saturation about luma, then split toning, shadows blended towards teal and highlights towards
    orange by luma. Each step stays inside the colour cube, so almost nothing clips and the grade can
    be undone: what a cycle-consistent translation is able to learn. Global and pointwise, so a network
    that learns it can match it almost exactly; it is not a per-channel affine map, so colour transfer
    only approximates it."""
    x = np.asarray(image.convert("RGB"), dtype=np.float64) / 255  # (H, W, 3)
    x = 0.5 + 0.5 * np.tanh(contrast * (x - 0.5)) / np.tanh(contrast / 2)
    luma = (x @ np.array([0.299, 0.587, 0.114]))[..., None]  # (H, W, 1)
    x = luma + (x - luma) * saturation
    x = x + tone * (1 - luma) * (np.array(shadows) - x) + tone * luma * (np.array(highlights) - x)
    return Image.fromarray((np.clip(x, 0, 1) * 255).round().astype(np.uint8))


FILTERS: dict[str, ImageFilter] = {"cartoon": cartoon, "colour_grade": colour_grade}


def resolve_filter(spec: str | ImageFilter) -> tuple[str, ImageFilter]:
    """A filter by name (from FILTERS) or any callable; returns (name, callable)."""
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__), spec
    if spec not in FILTERS:
        raise ValueError(f"unknown filter {spec!r}; choose one of {', '.join(sorted(FILTERS))} or pass a callable")
    return spec, FILTERS[spec]


# --- photographs and crops ---------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str  # "skimage.data/chelsea.png"
    sha256: str
    image: Image.Image = field(compare=False, repr=False)


def sample_photographs() -> list[Photo]:
    """The sample photographs present on disk (missing files are skipped); ValueError if none is."""
    photos = []
    for package, filename in SAMPLE_PHOTOS:
        try:
            data = resources.files(package).joinpath(filename).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            continue
        with Image.open(io.BytesIO(data)) as image:
            photos.append(Photo(f"{package}/{filename}", hashlib.sha256(data).hexdigest(), image.convert("RGB")))
    if not photos:
        raise ValueError("none of the sample photographs of scikit-image or scikit-learn is installed")
    return photos


@dataclass(frozen=True)
class Crop:
    photo: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in the photograph
    cell: tuple[int, int]  # column, row of the grid cell it lies in
    pool: str


def plan_crops(photos: Sequence[Photo], *, size: int, counts: dict[str, int], seed: int = 0,
               max_scale: float = 2.0) -> list[Crop]:
    """Random crops per pool, each inside a grid cell that only that pool draws from.

    Cells are squares of side ceil(size * max_scale), so a crop of any scale in [1, max_scale] fits.
    The shuffled cells are shared out in proportion to the requested counts (every pool gets one).
    """
    if size < 16:
        raise ValueError("size must be at least 16")
    if max_scale < 1:
        raise ValueError("max_scale must be at least 1")
    if set(counts) != set(POOLS) or min(counts.values()) < 1:
        raise ValueError(f"counts must give at least one crop for each of {', '.join(POOLS)}")
    cell = math.ceil(size * max_scale)
    cells = [(p, col, row) for p, photo in enumerate(photos)
             for row in range(photo.image.height // cell) for col in range(photo.image.width // cell)]
    if len(cells) < len(POOLS):
        raise ValueError(f"the photographs hold only {len(cells)} cells of {cell} px; use a smaller size or max_scale")
    rng = np.random.default_rng(seed)
    order = [cells[i] for i in rng.permutation(len(cells))]
    total = sum(counts.values())
    # Proportional shares, at least one cell each; the test pool takes the remainder.
    share = {pool: max(1, round(len(order) * counts[pool] / total)) for pool in ("A", "B")}
    share["A"] = min(share["A"], len(order) - 2)
    share["B"] = min(share["B"], len(order) - share["A"] - 1)
    pools = {"A": order[: share["A"]], "B": order[share["A"]: share["A"] + share["B"]],
             "test": order[share["A"] + share["B"]:]}
    crops = []
    for pool in POOLS:
        own = pools[pool]
        for index in range(counts[pool]):
            p, col, row = own[index % len(own)]
            side = min(cell, max(size, round(size * rng.uniform(1.0, max_scale))))
            left = col * cell + int(rng.integers(0, cell - side + 1))
            top = row * cell + int(rng.integers(0, cell - side + 1))
            crops.append(Crop(photos[p].name, (left, top, left + side, top + side), (col, row), pool))
    return crops


def cut(photo: Photo, crop: Crop, size: int) -> Image.Image:
    return photo.image.crop(crop.box).resize((size, size), Image.Resampling.BICUBIC)


@dataclass
class KnownMappingSet:
    """Unpaired train images (A photos, B filtered photos) and paired test images (a, filter(a))."""

    size: int
    seed: int
    filter_name: str
    a: list[Image.Image]
    b: list[Image.Image]
    test_a: list[Image.Image]
    test_b: list[Image.Image]  # test_b[i] = filter(test_a[i])
    crops: list[Crop]
    photos: list[Photo]
    max_scale: float = 2.0

    def params(self) -> dict[str, Any]:
        """The arguments of make_known_mapping that rebuild this set (a callable filter by its name)."""
        return {"size": self.size, "n_a": len(self.a), "n_b": len(self.b), "n_test": len(self.test_a),
                "seed": self.seed, "filter": self.filter_name, "max_scale": self.max_scale}

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "winnow-known-mapping/1", "params": self.params(),
            "size": self.size, "seed": self.seed, "filter": self.filter_name,
            "photos": [{"name": p.name, "sha256": p.sha256} for p in self.photos],
            "counts": {"A": len(self.a), "B": len(self.b), "test": len(self.test_a)},
            "crops": [{"photo": c.photo, "box": list(c.box), "cell": list(c.cell), "pool": c.pool} for c in self.crops],
        }

    def write(self, out_dir: str | Path) -> Path:
        """A/, B/ (training, unpaired), test/A/ and test/B/ (paired by file name), manifest.json."""
        out = Path(out_dir)
        for folder, images, prefix in (("A", self.a, "a"), ("B", self.b, "b"), ("test/A", self.test_a, "t"),
                                       ("test/B", self.test_b, "t")):
            (out / folder).mkdir(parents=True, exist_ok=True)
            for index, image in enumerate(images, start=1):
                image.save(out / folder / f"{prefix}-{index:05d}.png")
        (out / "manifest.json").write_text(json.dumps(self.manifest(), indent=1))
        return out


def make_known_mapping(*, size: int = 64, n_a: int = 200, n_b: int = 200, n_test: int = 50, seed: int = 0,
                       image_filter: str | ImageFilter = "cartoon", max_scale: float = 2.0) -> KnownMappingSet:
    """Build the data set in memory; the same arguments always give the same images."""
    filter_name, apply = resolve_filter(image_filter)
    photos = sample_photographs()
    by_name = {p.name: p for p in photos}
    crops = plan_crops(photos, size=size, counts={"A": n_a, "B": n_b, "test": n_test}, seed=seed, max_scale=max_scale)
    images: dict[str, list[Image.Image]] = {pool: [] for pool in POOLS}
    for crop in crops:
        images[crop.pool].append(cut(by_name[crop.photo], crop, size))
    b = [_checked(apply, image) for image in images["B"]]
    test_b = [_checked(apply, image) for image in images["test"]]
    return KnownMappingSet(size, seed, filter_name, images["A"], b, images["test"], test_b, crops, photos, max_scale)


def _checked(apply: ImageFilter, image: Image.Image) -> Image.Image:
    out = apply(image)
    if not isinstance(out, Image.Image) or out.size != image.size:
        raise ValueError("a filter must return a PIL image of its input's size")
    return out.convert("RGB")


# --- scores ------------------------------------------------------------------------------------


def psnr(x: Image.Image | np.ndarray, y: Image.Image | np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images; inf when they are identical."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(x: Image.Image | np.ndarray, y: Image.Image | np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004; 7x7 windows, per channel, averaged) of two 8-bit RGB images."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, data_range=255))


def fidelity(translate: Translate, sources: Sequence[Image.Image], targets: Sequence[Image.Image]
             ) -> dict[str, float]:
    """Mean and standard deviation of PSNR and SSIM of translate(source) against its known target."""
    if len(sources) != len(targets) or not sources:
        raise ValueError("need the same, non-zero number of sources and targets")
    scores = [(psnr(out, target), ssim(out, target))
              for out, target in ((translate(s).convert("RGB"), t) for s, t in zip(sources, targets, strict=True))]
    p, s = np.array(scores).T
    finite = p[np.isfinite(p)]  # identical pairs score inf; the spread is that of the others
    return {"psnr": float(p.mean()), "psnr_std": float(finite.std()) if finite.size else 0.0, "ssim": float(s.mean()),
            "ssim_std": float(s.std()), "n": len(scores)}


# --- baselines ---------------------------------------------------------------------------------


def identity(image: Image.Image) -> Image.Image:
    return image


class ColourTransfer:
    """Colour transfer in the spirit of Reinhard et al. 2001, between domains rather than image pairs:
    one affine map per Lab channel that moves the source domain's mean and spread onto the target's.

    Model-free: fitted on the unpaired training images only, so it is what any translation must
    beat before its texture or edges are worth anything.
    """

    def __init__(self, sources: Iterable[Image.Image], targets: Iterable[Image.Image]) -> None:
        self.source_mean, self.source_std = _lab_stats(sources)
        self.target_mean, self.target_std = _lab_stats(targets)

    def __call__(self, image: Image.Image) -> Image.Image:
        from skimage import color

        lab = color.rgb2lab(np.asarray(image.convert("RGB")))
        moved = (lab - self.source_mean) / np.maximum(self.source_std, 1e-6) * self.target_std + self.target_mean
        with warnings.catch_warnings():
            # Lab values outside the sRGB gamut are clipped, which is what we want here.
            warnings.simplefilter("ignore", UserWarning)
            rgb = color.lab2rgb(moved)
        return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))


def _lab_stats(images: Iterable[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    from skimage import color

    pixels = np.concatenate([color.rgb2lab(np.asarray(i.convert("RGB"))).reshape(-1, 3) for i in images])
    return pixels.mean(axis=0), pixels.std(axis=0)


def baselines(data: KnownMappingSet) -> dict[str, dict[str, dict[str, float]]]:
    """Fidelity of the identity map and of colour transfer, both directions, on the held-out pairs."""
    return {
        "identity": {"AB": fidelity(identity, data.test_a, data.test_b), "BA": fidelity(identity, data.test_b, data.test_a)},
        "colour_transfer": {"AB": fidelity(ColourTransfer(data.a, data.b), data.test_a, data.test_b),
                            "BA": fidelity(ColourTransfer(data.b, data.a), data.test_b, data.test_a)},
    }
