"""Train a CycleGAN on two folders of images, outside Django:

    python -m training.cyclegan A_DIR B_DIR --out OUT [--config JSON] [--resume CHECKPOINT]
    torchrun --nproc_per_node=4 -m training.cyclegan A_DIR B_DIR --out OUT   # one process per GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import CycleGANConfig
from .data import Domains
from .train import LOSS_NAMES, train

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def print_log(metrics: dict[str, Any]) -> None:
    losses = " ".join(f"{name} {metrics[name]:.3f}" for name in LOSS_NAMES)
    print(
        f"step {metrics['step']}/{metrics['total_steps']} lr {metrics['lr']:.2e} "
        f"{metrics['images_per_s']:.1f} img/s {losses}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.cyclegan",
                                     description="Train a CycleGAN on two folders of images.")
    parser.add_argument("folder_a")
    parser.add_argument("folder_b")
    parser.add_argument("--out", required=True, help="folder for samples and checkpoints")
    parser.add_argument("--config", default="{}", help='JSON overrides, e.g. \'{"image_size": 128, "epochs": 5}\'')
    parser.add_argument("--resume", default=None, help="checkpoint to continue from")
    args = parser.parse_args(argv)

    overrides = json.loads(args.config)
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    if local_rank >= 0:  # launched by torchrun
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            overrides["device"] = f"cuda:{local_rank}"
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        cfg = CycleGANConfig(**overrides)
    except (TypeError, ValueError) as exc:  # an unknown key, or a value the config refuses
        parser.error(f"--config: {exc}")
    data = Domains(list_images(args.folder_a), list_images(args.folder_b))
    distributed = dist.is_initialized()
    try:
        result = train(cfg, data, args.out, print_log, lambda: False, resume_from=args.resume)
        if distributed:
            # Every rank waits here until rank 0 has written its last checkpoint: a rank that tore the gloo
            # group down while its peer still used it aborted ("terminate called without an active exception").
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()
    if result.checkpoint is not None:
        print(f"{result.stopped} at step {result.step}; checkpoint {result.checkpoint}")
    failed = math.isnan(sum(result.losses.values() or [0.0]))
    if failed:
        print("losses became NaN", file=sys.stderr)
    if distributed:
        # The rank's work is written and its group destroyed. Leave without the interpreter's teardown:
        # under load a rank sometimes aborted there (SIGABRT, "terminate called without an active
        # exception") while gloo's and autograd's native threads were destroyed after Python's own
        # state, turning a finished run into a failed one for torchrun.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if failed else 0)
    if failed:
        raise SystemExit(1)

if __name__ == "__main__":
    main()
