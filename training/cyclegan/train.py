"""The CycleGAN training loop, one function top to bottom, plus checkpoint and inference helpers.

Follows Zhu et al. 2017 and its reference implementation for the maths (see model.py); speed comes
only from how the same model runs: bf16 autocast on CUDA, channels-last, cudnn autotuning,
pinned memory with non-blocking copies, optional torch.compile, and DDP across GPUs.

Loss names in logs keep the reference's convention, where a suffix names the generator's input:
    G_A      adversarial loss of G_ab, judged by D_b       G_B     same for G_ba, judged by D_a
    D_A      loss of D_b on real B and pooled fake B       D_B     loss of D_a on real A / fake A
    cycle_A  lambda * |G_ba(G_ab(a)) - a|                  cycle_B lambda * |G_ab(G_ba(b)) - b|
    idt_A    lambda * lambda_idt * |G_ab(b) - b|           idt_B   lambda * lambda_idt * |G_ba(a) - a|

Several GPUs (one process each, gradients all-reduced by DDP; batch_size is per GPU):
    torchrun --nproc_per_node=4 -m training.cyclegan.train photos/ paintings/ --out runs/p2p
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .data import Domains, eval_tensor, make_loader, pil_to_uint8, to_model_range, to_pil
from .model import (
    CycleGANConfig,
    ImagePool,
    ResnetGenerator,
    build_generator,
    build_networks,
    l1_loss,
    lr_factor,
    lsgan_loss,
    seed_everything,
)

CHECKPOINT_FORMAT = "winnow-cyclegan/1"
LOSS_NAMES = ("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
SAMPLE_COUNT = 4  # rows in a sample grid
MIN_TRANSLATE_SIDE = 16

LogFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]
SampleFn = Callable[[Path, int], None]
CheckpointFn = Callable[[Path, int, list[Path]], None]


@dataclass
class Result:
    step: int
    total_steps: int
    epoch: int
    stopped: str  # "completed", "cancelled" or "time_limit"
    checkpoint: Path | None
    losses: dict[str, float] = field(default_factory=dict)
    images_per_s: float = 0.0


def resolve_device(cfg: CycleGANConfig) -> torch.device:
    if cfg.device:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(cfg: CycleGANConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. bf16 needs no loss scaling; fp16 does."""
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def train(
    cfg: CycleGANConfig,
    data: Domains,
    out_dir: str | Path,
    on_log: LogFn,
    should_stop: StopFn,
    resume_from: str | Path | None = None,
    *,
    on_sample: SampleFn | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> Result:
    """Train (or continue training) a CycleGAN on `data`, writing samples and checkpoints to `out_dir`.

    `on_log` receives a dict every `log_every` iterations; `should_stop` is polled every iteration
    and, when true, the loop saves a checkpoint and returns. Under torchrun (an initialised process
    group) every rank trains its share of each batch and rank 0 alone logs and writes files.
    """
    out_dir = Path(out_dir)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    is_main = rank == 0
    device = resolve_device(cfg)
    amp_dtype = autocast_dtype(cfg, device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cudnn pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(cfg.seed + rank)

    # Networks, optimisers (one for both generators, one for both discriminators, as in the paper).
    g_ab, g_ba, d_a, d_b = (net.to(device, memory_format=memory_format) for net in build_networks(cfg))
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    start_step, elapsed_before = 0, 0.0
    checkpoint: dict[str, Any] | None = None
    if resume_from is not None:
        checkpoint = torch.load(resume_from, map_location=device, weights_only=True)
        for net, key in ((g_ab, "G_ab"), (g_ba, "G_ba"), (d_a, "D_a"), (d_b, "D_b")):
            net.load_state_dict(checkpoint[key])
        opt_g.load_state_dict(checkpoint["opt_G"])
        opt_d.load_state_dict(checkpoint["opt_D"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_step, elapsed_before = checkpoint["step"], checkpoint.get("elapsed_s", 0.0)

    loader, steps_per_epoch = make_loader(
        data,
        load_size=cfg.load_size or cfg.image_size,
        crop_size=cfg.image_size,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        start_step=start_step,
        flip=cfg.flip,
        channels=(cfg.input_nc, cfg.output_nc),
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        rank=rank,
        world_size=world_size,
    )
    total_steps = (cfg.epochs + cfg.decay_epochs) * steps_per_epoch

    def schedule(step: int) -> float:
        return lr_factor(step, steps_per_epoch, cfg.epochs, cfg.decay_epochs)

    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, schedule)
    if checkpoint is not None:
        sched_g.load_state_dict(checkpoint["sched_G"])
        sched_d.load_state_dict(checkpoint["sched_D"])
        torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
        if device.type == "cuda" and checkpoint["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([state.cpu() for state in checkpoint["rng"]["cuda"]])
        saved_pools = checkpoint.get("pools", {})  # absent from checkpoints written before pools were saved
        checkpoint = None  # free the optimizer state copies
    else:
        saved_pools = {}

    # The modules the loop calls: optionally compiled, and wrapped in DDP for the parameters they
    # update. The generator step calls the discriminators unwrapped: they are frozen there, and DDP
    # would otherwise wait for their gradients.
    def compiled(net: nn.Module) -> nn.Module:
        return torch.compile(net) if cfg.compile else net

    run_g_ab, run_g_ba, frozen_d_a, frozen_d_b = compiled(g_ab), compiled(g_ba), compiled(d_a), compiled(d_b)
    run_d_a, run_d_b = frozen_d_a, frozen_d_b
    if distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        run_g_ab = DistributedDataParallel(run_g_ab, device_ids=device_ids)
        run_g_ba = DistributedDataParallel(run_g_ba, device_ids=device_ids)
        run_d_a = DistributedDataParallel(run_d_a, device_ids=device_ids)
        run_d_b = DistributedDataParallel(run_d_b, device_ids=device_ids)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    pool_a, pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)
    for pool, key in ((pool_a, "A"), (pool_b, "B")):  # a resumed run's discriminators see the same history
        pool.load_state(saved_pools.get(key), device, memory_format)
    fixed_a = torch.stack([eval_tensor(p, cfg.image_size, cfg.input_nc) for p in data.a[:SAMPLE_COUNT]])
    fixed_b = torch.stack([eval_tensor(p, cfg.image_size, cfg.output_nc) for p in data.b[:SAMPLE_COUNT]])

    def save_checkpoint(step: int, elapsed_s: float) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": cfg.to_dict(),
            "G_ab": g_ab.state_dict(),  # the uncompiled, unwrapped modules: portable keys
            "G_ba": g_ba.state_dict(),
            "D_a": d_a.state_dict(),
            "D_b": d_b.state_dict(),
            "opt_G": opt_g.state_dict(),
            "opt_D": opt_d.state_dict(),
            "sched_G": sched_g.state_dict(),
            "sched_D": sched_d.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "epoch": step // steps_per_epoch,
            "steps_per_epoch": steps_per_epoch,
            "elapsed_s": elapsed_s,
            # The history of fakes the discriminators are shown (this process's; under DDP, rank 0's).
            "pools": {"A": pool_a.state(), "B": pool_b.state()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            },
        }
        folder = out_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{step:08d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader (or a resumed run) never sees half a file
        old = sorted(folder.glob("step_*.pt"))[: -cfg.keep_checkpoints]
        for stale in old:
            stale.unlink(missing_ok=True)
        if on_checkpoint is not None:
            on_checkpoint(path, step, old)
        return path

    def save_sample(step: int) -> None:
        with torch.no_grad(), autocast:
            real_a = fixed_a.to(device, memory_format=memory_format)
            real_b = fixed_b.to(device, memory_format=memory_format)
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        path = out_dir / "samples" / f"step_{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        sample_grid([real_a, fake_b, rec_a], [real_b, fake_a, rec_b]).save(path)
        if on_sample is not None:
            on_sample(path, step)

    # The loop. `step` counts finished iterations, so a checkpoint at step s resumes at iteration s.
    step, last_path = start_step, None
    loss_sums = torch.zeros(len(LOSS_NAMES), device=device)
    last_losses: dict[str, float] = {}
    started = time.monotonic()
    interval_start, interval_steps, rate = started, 0, 0.0
    stopped = "completed"
    batches = iter(loader)
    while step < total_steps:
        if stop_requested(should_stop, distributed, device):
            stopped = "cancelled"
            break
        if cfg.time_limit_s is not None and elapsed_before + time.monotonic() - started >= cfg.time_limit_s:
            stopped = "time_limit"
            break
        batch_a, batch_b = next(batches)  # uint8 (B, C, H, W), pinned on CUDA
        real_a = to_model_range(batch_a.to(device, non_blocking=True)).contiguous(memory_format=memory_format)
        real_b = to_model_range(batch_b.to(device, non_blocking=True)).contiguous(memory_format=memory_format)

        # Generator step: both generators together, discriminators frozen (paper eq. 3, minimised over G, F).
        d_a.requires_grad_(False)
        d_b.requires_grad_(False)
        with autocast:
            fake_b = run_g_ab(real_a)  # G(a)
            rec_a = run_g_ba(fake_b)  # F(G(a)) ~ a
            fake_a = run_g_ba(real_b)  # F(b)
            rec_b = run_g_ab(fake_a)  # G(F(b)) ~ b
            loss_g_a = lsgan_loss(frozen_d_b(fake_b), True)
            loss_g_b = lsgan_loss(frozen_d_a(fake_a), True)
            loss_cycle_a = l1_loss(rec_a, real_a) * cfg.lambda_cycle
            loss_cycle_b = l1_loss(rec_b, real_b) * cfg.lambda_cycle
            if cfg.lambda_identity > 0:  # G should leave an image already in B unchanged (paper 5.2)
                loss_idt_a = l1_loss(run_g_ab(real_b), real_b) * cfg.lambda_cycle * cfg.lambda_identity
                loss_idt_b = l1_loss(run_g_ba(real_a), real_a) * cfg.lambda_cycle * cfg.lambda_identity
            else:
                loss_idt_a = loss_idt_b = torch.zeros((), device=device)
            loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)

        # Discriminator step: real vs. a fake drawn from the history pool, halved to slow D (paper 7.1).
        d_a.requires_grad_(True)
        d_b.requires_grad_(True)
        with autocast:
            pooled_b, pooled_a = pool_b.query(fake_b), pool_a.query(fake_a)  # detached
            loss_d_a = 0.5 * (lsgan_loss(run_d_b(real_b), True) + lsgan_loss(run_d_b(pooled_b), False))
            loss_d_b = 0.5 * (lsgan_loss(run_d_a(real_a), True) + lsgan_loss(run_d_a(pooled_a), False))
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d_a + loss_d_b).backward()
        scaler.step(opt_d)
        scaler.update()
        sched_g.step()
        sched_d.step()
        step += 1
        interval_steps += 1

        # Accumulate on the device: reading a loss with .item() would sync the GPU every iteration.
        losses = (loss_g_a, loss_g_b, loss_d_a, loss_d_b, loss_cycle_a, loss_cycle_b, loss_idt_a, loss_idt_b)
        loss_sums += torch.stack([loss.detach().float() for loss in losses])
        if step % cfg.log_every == 0 or step == total_steps:
            means = (loss_sums / interval_steps).tolist()
            now = time.monotonic()
            rate = interval_steps * cfg.batch_size * world_size / max(now - interval_start, 1e-9)
            last_losses = dict(zip(LOSS_NAMES, means, strict=True))
            if is_main:
                on_log(
                    {
                        "step": step,
                        "total_steps": total_steps,
                        "epoch": (step - 1) // steps_per_epoch,
                        "lr": cfg.lr * schedule(step - 1),  # the rate this iteration used
                        "images_per_s": rate,
                        **last_losses,
                    }
                )
            loss_sums.zero_()
            interval_start, interval_steps = now, 0
        if is_main and (step % cfg.sample_every == 0 or step == total_steps):
            save_sample(step)
        if is_main and (step % cfg.checkpoint_every == 0 or step == total_steps):
            last_path = save_checkpoint(step, elapsed_before + time.monotonic() - started)

    if is_main and step != start_step and (last_path is None or not last_path.name.endswith(f"{step:08d}.pt")):
        # Stopped between checkpoints: save where we are so a resume loses nothing.
        last_path = save_checkpoint(step, elapsed_before + time.monotonic() - started)
    return Result(
        step=step,
        total_steps=total_steps,
        epoch=max(step - 1, 0) // steps_per_epoch,
        stopped=stopped,
        checkpoint=last_path,
        losses=last_losses,
        images_per_s=rate,
    )


def stop_requested(should_stop: StopFn, distributed: bool, device: torch.device) -> bool:
    """Poll the caller; under DDP every rank must agree, or the others would hang in the next all-reduce."""
    stop = bool(should_stop())
    if not distributed:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def sample_grid(row_a: list[torch.Tensor], row_b: list[torch.Tensor]) -> Image.Image:
    """One row per fixed sample: real A | fake B | rec A | real B | fake A | rec B."""
    columns = [*row_a, *row_b]  # each (N, C, H, W)
    n, _, h, w = columns[0].shape
    grid = Image.new("RGB", (w * len(columns), h * n), "white")
    for col, images in enumerate(columns):
        for row in range(n):
            grid.paste(to_pil(images[row]).convert("RGB"), (col * w, row * h))
    return grid


# Using a trained model.


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint (or generator export) as saved by train(); refuses files that are not one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a CycleGAN checkpoint written by this version")
    return state


def load_generator(checkpoint_path: str | Path, direction: str, device: str = "cpu") -> ResnetGenerator:
    """The A->B ("AB") or B->A ("BA") generator of a checkpoint, in eval mode."""
    if direction not in ("AB", "BA"):
        raise ValueError('direction must be "AB" or "BA"')
    state = load_checkpoint(checkpoint_path)
    cfg = CycleGANConfig.from_dict(state["config"])
    net = build_generator(cfg, direction)
    net.load_state_dict(state["G_ab" if direction == "AB" else "G_ba"])
    return net.to(device).eval()


def export_generators(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write only the config and both generators (a fraction of a full checkpoint) for download."""
    state = load_checkpoint(checkpoint_path)
    slim = {key: state[key] for key in ("format", "config", "G_ab", "G_ba", "step")}
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save(slim, tmp)
    os.replace(tmp, out_path)
    return out_path


@torch.no_grad()
def translate(generator: nn.Module, image: Image.Image) -> Image.Image:
    """Translate a whole image at its own size; the output has the input's width and height.

    The generator downsamples twice, so the input is padded (reflecting its borders) to a multiple
    of 4 and the result cropped back.
    """
    parameter = next(generator.parameters())
    channels = parameter.shape[1] if parameter.dim() == 4 else 3
    mode = "L" if channels == 1 else "RGB"
    x = to_model_range(pil_to_uint8(image.convert(mode))).unsqueeze(0).to(parameter.device)  # (1, C, H, W)
    h, w = x.shape[-2:]
    if min(h, w) < MIN_TRANSLATE_SIDE:
        # The residual blocks reflect-pad a quarter-resolution map, which needs a few pixels to reflect.
        raise ValueError(f"image must be at least {MIN_TRANSLATE_SIDE} px on each side, got {w}x{h}")
    pad_h, pad_w = (-h) % 4, (-w) % 4
    if pad_h or pad_w:
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    y = generator(x)[..., :h, :w]  # (1, C, H, W)
    return to_pil(y[0])


# Command line: python -m training.cyclegan.train A_DIR B_DIR --out OUT [--config JSON] (or under torchrun).

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a CycleGAN on two folders of images.")
    parser.add_argument("folder_a")
    parser.add_argument("folder_b")
    parser.add_argument("--out", required=True, help="folder for samples and checkpoints")
    parser.add_argument("--config", default="{}", help='JSON overrides, e.g. \'{"image_size": 128, "epochs": 5}\'')
    parser.add_argument("--resume", default=None, help="checkpoint to continue from")
    args = parser.parse_args(argv)

    overrides = json.loads(args.config)
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    if local_rank >= 0:  # launched by torchrun
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            overrides["device"] = f"cuda:{local_rank}"
        dist.init_process_group(backend)
    cfg = CycleGANConfig(**overrides)
    data = Domains(list_images(args.folder_a), list_images(args.folder_b))

    def log(metrics: dict[str, Any]) -> None:
        losses = " ".join(f"{name} {metrics[name]:.3f}" for name in LOSS_NAMES)
        print(
            f"step {metrics['step']}/{metrics['total_steps']} lr {metrics['lr']:.2e} "
            f"{metrics['images_per_s']:.1f} img/s {losses}",
            flush=True,
        )

    try:
        result = train(cfg, data, args.out, log, lambda: False, resume_from=args.resume)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result.checkpoint is not None:
        print(f"{result.stopped} at step {result.step}; checkpoint {result.checkpoint}")
    if math.isnan(sum(result.losses.values() or [0.0])):
        raise SystemExit("losses became NaN")


if __name__ == "__main__":
    main()
