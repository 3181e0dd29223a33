"""CycleGAN training speed: images/s and peak memory of the real training loop (data pipeline included).

On the CPU: 64x64, the paper's model (ngf 64, 6 residual blocks at this size), fp32, batch 1 and 4.
The data pipeline alone: 512x512 JPEGs to 256x256 training crops, with 0 and 2 loader processes.
On a CUDA GPU: 256x256 (9 blocks) in fp32, bf16 autocast and bf16 + torch.compile, each at batch 1
and at the fastest batch size that fits (doubling until out of memory or `--max-batch`).
An "image" is one training example, an (A, B) pair, as in the reference implementation's timing.

    .venv/bin/python benchmarks/train_speed.py [--cpu-only] [--steps 10] [--max-batch 64]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.cyclegan.config import CycleGANConfig  # noqa: E402
from training.cyclegan.data import Domains, make_loader  # noqa: E402
from training.cyclegan.train import train  # noqa: E402


def make_domain(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """Photo-like JPEGs (a smooth random field) slightly larger than the load size, as real data is."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def measure(cfg: CycleGANConfig, data: Domains, out: Path, steps: int) -> tuple[float, float]:
    """Images/s over `steps` iterations after a warm-up of the same length, and peak memory in MiB."""
    cfg.log_every = steps
    cfg.sample_every = cfg.checkpoint_every = 10**9  # measure training, not file writing
    rates: list[float] = []
    cuda = torch.device(cfg.device or "cpu").type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    train(cfg, data, out, lambda metrics: rates.append(metrics["images_per_s"]), lambda: len(rates) >= 2)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark
    return rates[-1], peak


def measure_loader(data: Domains, size: int, batch: int, workers: int, batches: int) -> float:
    """(A, B) pairs/s the data pipeline alone delivers: decode, resize, random crop, flip, collate."""
    loader, _ = make_loader(
        data, load_size=round(size * 286 / 256), crop_size=size, batch_size=batch, seed=0, num_workers=workers
    )
    stream = iter(loader)
    for _ in range(min(workers, 2) + 1):  # let the workers start
        next(stream)
    started = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch / (time.perf_counter() - started)


def row(label: str, batch: int, rate: float, peak: float, device: str) -> None:
    print(f"| {label:<22} | {batch:>5} | {rate:>9.2f} | {peak:>8.0f} MiB ({device}) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed iterations per setting (after as many warm-up)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="data loader workers (default: 1 on CPU, 8 on GPU)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="winnow-train-speed-") as tmp:
        root = Path(tmp)
        print("| setting                | batch | images/s  | peak memory |")
        print("| ---------------------- | ----: | --------: | ----------- |")
        small = Domains(make_domain(root / "a64", 16, 80, 1), make_domain(root / "b64", 16, 80, 2))
        for batch in (1, 4):
            cfg = CycleGANConfig(
                image_size=64,
                batch_size=batch,
                device="cpu",
                precision="fp32",
                epochs=1000,
                num_workers=args.workers if args.workers is not None else 1,
            )
            rate, peak = measure(cfg, small, root / "out", args.steps)
            row("64x64 fp32", batch, rate, peak, "cpu")

        photos = Domains(make_domain(root / "a512", 32, 512, 5), make_domain(root / "b512", 32, 512, 6))
        for workers in (0, 2):
            rate = measure_loader(photos, 256, 8, workers, 60)
            print(
                f"| data only, 512px JPEG -> 256 crop, {workers} loader processes | 8 | {rate:>9.1f} | - |", flush=True
            )

        if args.cpu_only or not torch.cuda.is_available():
            print("\nNo CUDA device: the 256x256 GPU figures were not measured.")
            return
        count = max(args.max_batch, 64)
        large = Domains(make_domain(root / "a256", count, 300, 3), make_domain(root / "b256", count, 300, 4))
        name = torch.cuda.get_device_name()
        for label, precision, compiled in (
            ("256 fp32", "fp32", False),
            ("256 bf16", "bf16", False),
            ("256 bf16 compiled", "bf16", True),
        ):
            best: tuple[float, int, float] | None = None
            batch = 1
            while batch <= args.max_batch:
                cfg = CycleGANConfig(
                    image_size=256,
                    batch_size=batch,
                    device="cuda",
                    precision=precision,
                    compile=compiled,
                    epochs=1000,
                    num_workers=args.workers if args.workers is not None else 8,
                )
                try:
                    rate, peak = measure(cfg, large, root / "out", args.steps)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    break
                if batch == 1:
                    row(label, 1, rate, peak, name)
                if best is None or rate > best[0]:
                    best = (rate, batch, peak)
                batch *= 2
            if best is not None and best[1] != 1:
                row(f"{label} (fastest)", best[1], best[0], best[2], name)


if __name__ == "__main__":
    main()
