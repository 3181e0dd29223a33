"""The CycleGAN training loop: `train()` reads top to bottom; each of its steps is a small function below it.

Follows Zhu et al. 2017 and its reference implementation for the maths (see model.py); speed comes
only from how the same model runs: bf16 autocast on CUDA, channels-last, cudnn autotuning,
pinned memory with non-blocking copies, optional torch.compile, and DDP across GPUs.

Each loss is named after the network it trains (the reference code's name in brackets):
    G_ab_gan   adversarial loss of G_ab, judged by D_b (G_A)     G_ba_gan   same for G_ba, judged by D_a (G_B)
    cycle_aba  lambda * |G_ba(G_ab(a)) - a|, both G (cycle_A)    cycle_bab  lambda * |G_ab(G_ba(b)) - b| (cycle_B)
    G_ab_idt   lambda * lambda_idt * |G_ab(b) - b| (idt_A)       G_ba_idt   lambda * lambda_idt * |G_ba(a) - a| (idt_B)
    D_a        D_a on real A and pooled fake A (D_B)             D_b        D_b on real B and pooled fake B (D_A)
               (with r1_gamma > 0, D_a and D_b include their R1 penalty)

Options off in the paper (config.py says where each comes from): `diffaug` puts every image a
discriminator sees through DiffAugment, `r1_gamma` adds R1 to the discriminators' losses,
`lr_d_ratio` scales the discriminators' learning rate; the networks' options live in model.py.

Several GPUs (one process each, gradients all-reduced by DDP; batch_size is per GPU):
    torchrun --nproc_per_node=4 -m training.cyclegan photos/ paintings/ --out runs/p2p
"""

from __future__ import annotations

import contextlib
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

from . import checkpoint
from .config import CycleGANConfig
from .data import Domains, eval_tensor, make_loader, to_model_range, to_pil
from .model import (
    DiffAugment,
    GeneratorAverage,
    ImagePool,
    Networks,
    Scores,
    build_networks,
    l1_loss,
    low_pass,
    lr_factor,
    lsgan_loss,
    seed_everything,
)

GENERATOR_LOSSES = ("G_ab_gan", "G_ba_gan", "cycle_aba", "cycle_bab", "G_ab_idt", "G_ba_idt")
DISCRIMINATOR_LOSSES = ("D_a", "D_b")
LOSS_NAMES = GENERATOR_LOSSES + DISCRIMINATOR_LOSSES
SAMPLE_COUNT = 4  # rows in a sample grid

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
    run = place(cfg)
    seed_everything(cfg.seed + run.rank)
    nets = Networks(*(net.to(run.device, memory_format=run.memory_format) for net in build_networks(cfg)))
    saved = checkpoint.read(resume_from, map_location=run.device) if resume_from is not None else None
    start_step = saved["step"] if saved else 0
    loader, steps_per_epoch = make_loader(
        data, load_size=cfg.load_size or cfg.image_size, crop_size=cfg.image_size, batch_size=cfg.batch_size,
        seed=cfg.seed, start_step=start_step, flip=cfg.flip, channels=(cfg.input_nc, cfg.output_nc),
        num_workers=cfg.num_workers, pin_memory=run.device.type == "cuda", rank=run.rank, world_size=run.world_size,
    )
    total_steps = (cfg.epochs + cfg.decay_epochs) * steps_per_epoch
    optim = Optimisation.build(cfg, nets, run, steps_per_epoch)
    pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
    elapsed_before = 0.0
    average: GeneratorAverage | None = None
    if saved is not None:  # a resumed run's weights, optimisers, schedules, RNG and pools come back
        elapsed_before = checkpoint.restore(saved, nets=nets, optimisation=optim.states(), pools=pools,
                                            device=run.device, memory_format=run.memory_format)
    if cfg.ema_decay:  # the average starts as the generators (a resumed run's, then its saved average)
        average = GeneratorAverage(nets, cfg.ema_decay)
        if saved is not None and "G_average" in saved:
            average.load_state_dict(saved["G_average"])
    saved = None  # free the optimiser state copies

    def states() -> dict[str, checkpoint.Stateful]:
        return {**optim.states(), **({"G_average": average} if average is not None else {})}
    loop = LoopModules.wrap(nets, cfg, run)
    fixed = (sample_batch(data.a, cfg.image_size, cfg.input_nc), sample_batch(data.b, cfg.image_size, cfg.output_nc))
    started = time.monotonic()

    def save(step: int) -> Path:
        path = out_dir / "checkpoints" / f"step_{step:08d}.pt"
        removed = checkpoint.save(path, cfg=cfg, nets=nets, optimisation=states(), pools=pools, step=step,
                                  steps_per_epoch=steps_per_epoch, elapsed_s=elapsed_before + time.monotonic() - started,
                                  keep=cfg.keep_checkpoints)
        if on_checkpoint is not None:
            on_checkpoint(path, step, removed)
        return path

    # The loop. `step` counts finished iterations, so a checkpoint at step s resumes at iteration s.
    step, last_path, stopped = start_step, None, "completed"
    meter = LossMeter(run.device, images_per_step=cfg.batch_size * run.world_size)
    batches = iter(loader)
    while step < total_steps:
        if stop_requested(should_stop, run):
            stopped = "cancelled"
            break
        if cfg.time_limit_s is not None and elapsed_before + time.monotonic() - started >= cfg.time_limit_s:
            stopped = "time_limit"
            break
        real_a, real_b = (to_model_range(batch.to(run.device, non_blocking=True)).contiguous(
            memory_format=run.memory_format) for batch in next(batches))  # uint8 (B, C, H, W) -> [-1, 1]
        losses, fake_a, fake_b = generator_step(cfg, loop, optim, run, real_a, real_b)
        if average is not None:
            average.update(nets)
        losses |= discriminator_step(cfg, loop, optim, run, pools, real_a, real_b, fake_a, fake_b)
        optim.end_iteration()
        step += 1
        meter.add(losses)
        if step % cfg.log_every == 0 or step == total_steps:
            means, rate = meter.take()
            if run.is_main:
                on_log({"step": step, "total_steps": total_steps, "epoch": (step - 1) // steps_per_epoch,
                        "lr": cfg.lr * optim.schedule(step - 1),  # the rate this iteration used
                        "images_per_s": rate, **means})
        if run.is_main and (step % cfg.sample_every == 0 or step == total_steps):
            path = save_sample(average or nets, run, fixed, out_dir / "samples" / f"step_{step:08d}.png")
            if on_sample is not None:
                on_sample(path, step)
        if run.is_main and (step % cfg.checkpoint_every == 0 or step == total_steps):
            last_path = save(step)

    if run.is_main and step != start_step and (last_path is None or not last_path.name.endswith(f"{step:08d}.pt")):
        last_path = save(step)  # stopped between checkpoints: save where we are so a resume loses nothing
    return Result(step=step, total_steps=total_steps, epoch=max(step - 1, 0) // steps_per_epoch, stopped=stopped,
                  checkpoint=last_path, losses=meter.last, images_per_s=meter.rate)


# --- where and how it runs ------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """The device, precision and memory layout of a run, and its rank under DDP."""

    device: torch.device
    amp_dtype: torch.dtype | None  # None: plain fp32
    memory_format: torch.memory_format
    distributed: bool
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


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


def place(cfg: CycleGANConfig) -> Placement:
    distributed = dist.is_available() and dist.is_initialized()
    device = resolve_device(cfg)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cudnn pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Placement(
        device=device, amp_dtype=autocast_dtype(cfg, device),
        memory_format=torch.channels_last if channels_last else torch.contiguous_format, distributed=distributed,
        rank=dist.get_rank() if distributed else 0, world_size=dist.get_world_size() if distributed else 1,
    )


@dataclass
class Optimisation:
    """One Adam for both generators and one for both discriminators (as in the paper), their lr
    schedules (constant, then linear to 0), and the loss scaler fp16 needs."""

    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    sched_G: torch.optim.lr_scheduler.LambdaLR
    sched_D: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    schedule: Callable[[int], float]

    @classmethod
    def build(cls, cfg: CycleGANConfig, nets: Networks, run: Placement, steps_per_epoch: int) -> Optimisation:
        def schedule(step: int) -> float:
            return lr_factor(step, steps_per_epoch, cfg.epochs, cfg.decay_epochs)

        betas = (cfg.beta1, cfg.beta2)
        assert cfg.lr_d_ratio is not None  # resolved from the recipe
        opt_g = torch.optim.Adam([*nets.G_ab.parameters(), *nets.G_ba.parameters()], lr=cfg.lr, betas=betas)
        opt_d = torch.optim.Adam([*nets.D_a.parameters(), *nets.D_b.parameters()], lr=cfg.lr * cfg.lr_d_ratio,
                                 betas=betas)
        return cls(opt_g, opt_d, torch.optim.lr_scheduler.LambdaLR(opt_g, schedule),
                   torch.optim.lr_scheduler.LambdaLR(opt_d, schedule),
                   torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16), schedule)

    def states(self) -> dict[str, checkpoint.Stateful]:
        """What a checkpoint saves, by its key there."""
        return {"opt_G": self.opt_G, "opt_D": self.opt_D, "sched_G": self.sched_G, "sched_D": self.sched_D,
                "scaler": self.scaler}

    def end_iteration(self) -> None:
        self.scaler.update()
        self.sched_G.step()
        self.sched_D.step()


@dataclass
class LoopModules:
    """The modules the loop calls: optionally compiled, and wrapped in DDP for the parameters they
    update. The generator step calls the discriminators unwrapped (`frozen_D_*`): they are frozen
    there, and DDP would otherwise wait for their gradients. `nets` are the plain modules."""

    nets: Networks
    G_ab: nn.Module
    G_ba: nn.Module
    D_a: nn.Module
    D_b: nn.Module
    frozen_D_a: nn.Module
    frozen_D_b: nn.Module
    augment: DiffAugment  # before every discriminator call; no transforms with the paper's "none"

    @classmethod
    def wrap(cls, nets: Networks, cfg: CycleGANConfig, run: Placement) -> LoopModules:
        g_ab, g_ba, d_a, d_b = (torch.compile(net) if cfg.compile else net for net in nets)
        frozen_d_a, frozen_d_b = d_a, d_b
        if run.distributed:
            ids = [run.device.index] if run.device.type == "cuda" else None
            g_ab, g_ba, d_a, d_b = (DistributedDataParallel(net, device_ids=ids) for net in (g_ab, g_ba, d_a, d_b))
        return cls(nets, g_ab, g_ba, d_a, d_b, frozen_d_a, frozen_d_b, DiffAugment(cfg.diffaug or "none"))


# --- one iteration ----------------------------------------------------------------------------


def generator_step(cfg: CycleGANConfig, loop: LoopModules, optim: Optimisation, run: Placement,
                   real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Both generators together, discriminators frozen (paper eq. 3, minimised over G and F).
    Returns the generators' losses and the fakes (fake A, fake B) for the discriminator step."""
    loop.nets.D_a.requires_grad_(False)
    loop.nets.D_b.requires_grad_(False)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return low_pass(x, cfg.cycle_blur or 0.0)

    with run.autocast():
        fake_b = loop.G_ab(real_a)  # G(a)
        rec_a = loop.G_ba(fake_b)  # F(G(a)) ~ a
        fake_a = loop.G_ba(real_b)  # F(b)
        rec_b = loop.G_ab(fake_a)  # G(F(b)) ~ b
        losses = {
            "G_ab_gan": lsgan_loss(loop.frozen_D_b(loop.augment(fake_b)), True, cfg.pixel_d),
            "G_ba_gan": lsgan_loss(loop.frozen_D_a(loop.augment(fake_a)), True, cfg.pixel_d),
            "cycle_aba": l1_loss(blur(rec_a), blur(real_a)) * cfg.lambda_cycle,
            "cycle_bab": l1_loss(blur(rec_b), blur(real_b)) * cfg.lambda_cycle,
        }
        if cfg.lambda_identity:  # G should leave an image already in B unchanged (paper 5.2)
            weight = cfg.lambda_cycle * cfg.lambda_identity
            losses["G_ab_idt"] = l1_loss(blur(loop.G_ab(real_b)), blur(real_b)) * weight
            losses["G_ba_idt"] = l1_loss(blur(loop.G_ba(real_a)), blur(real_a)) * weight
        else:
            losses["G_ab_idt"] = losses["G_ba_idt"] = torch.zeros((), device=run.device)
        total = sum(losses.values())
    optim.opt_G.zero_grad(set_to_none=True)
    optim.scaler.scale(total).backward()
    optim.scaler.step(optim.opt_G)
    return losses, fake_a, fake_b


def discriminator_step(cfg: CycleGANConfig, loop: LoopModules, optim: Optimisation, run: Placement,
                       pools: dict[str, ImagePool], real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                       fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Real vs. a fake drawn from the history pool, halved to slow D down (paper 7.1); plus R1 on the
    real images when r1_gamma > 0."""
    loop.nets.D_a.requires_grad_(True)
    loop.nets.D_b.requires_grad_(True)
    with run.autocast():
        pooled_b, pooled_a = pools["B"].query(fake_b), pools["A"].query(fake_a)  # detached
        seen_b, seen_a = loop.augment(real_b), loop.augment(real_a)
        if cfg.r1_gamma:
            seen_b, seen_a = seen_b.detach().requires_grad_(True), seen_a.detach().requires_grad_(True)
        score_b, score_a = loop.D_b(seen_b), loop.D_a(seen_a)
        loss_D_b = 0.5 * (lsgan_loss(score_b, True, cfg.pixel_d)
                          + lsgan_loss(loop.D_b(loop.augment(pooled_b)), False, cfg.pixel_d))
        loss_D_a = 0.5 * (lsgan_loss(score_a, True, cfg.pixel_d)
                          + lsgan_loss(loop.D_a(loop.augment(pooled_a)), False, cfg.pixel_d))
        if cfg.r1_gamma:
            loss_D_b = loss_D_b + r1_penalty(score_b, seen_b) * (cfg.r1_gamma / 2)
            loss_D_a = loss_D_a + r1_penalty(score_a, seen_a) * (cfg.r1_gamma / 2)
    optim.opt_D.zero_grad(set_to_none=True)
    optim.scaler.scale(loss_D_b + loss_D_a).backward()
    optim.scaler.step(optim.opt_D)
    return {"D_a": loss_D_a, "D_b": loss_D_b}


def r1_penalty(scores: Scores, images: torch.Tensor) -> torch.Tensor:
    """E |grad_x D(x)|^2 over real images x (Mescheder, Geiger and Nowozin 2018, eq. 9 without gamma / 2),
    kept in the graph so the discriminator's step minimises it; of all its scores with a pixel judge."""
    total = sum(part.float().sum() for part in scores) if isinstance(scores, tuple) else scores.float().sum()
    (grad,) = torch.autograd.grad(total, images, create_graph=True)
    return grad.float().pow(2).sum(dim=(1, 2, 3)).mean()


def stop_requested(should_stop: StopFn, run: Placement) -> bool:
    """Poll the caller; under DDP every rank must agree, or the others would hang in the next all-reduce."""
    stop = bool(should_stop())
    if not run.distributed:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=run.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class LossMeter:
    """Mean losses and speed over each logging interval. The sums stay on the device: reading a
    loss with .item() would sync the GPU every iteration."""

    def __init__(self, device: torch.device, images_per_step: int) -> None:
        self.sums = torch.zeros(len(LOSS_NAMES), device=device)
        self.images_per_step = images_per_step
        self.steps, self.started = 0, time.monotonic()
        self.last: dict[str, float] = {}
        self.rate = 0.0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        self.sums += torch.stack([losses[name].detach().float() for name in LOSS_NAMES])
        self.steps += 1

    def take(self) -> tuple[dict[str, float], float]:
        """The interval's mean losses and images per second; the next interval starts now."""
        now = time.monotonic()
        self.last = dict(zip(LOSS_NAMES, (self.sums / self.steps).tolist(), strict=True))
        self.rate = self.steps * self.images_per_step / max(now - self.started, 1e-9)
        self.sums.zero_()
        self.steps, self.started = 0, now
        return self.last, self.rate


# --- sample grids -----------------------------------------------------------------------------


def sample_batch(paths: Any, size: int, channels: int) -> torch.Tensor:
    """The first few images of a domain, centre-cropped: the same rows in every grid of a run."""
    return torch.stack([eval_tensor(p, size, channels) for p in paths[:SAMPLE_COUNT]])


def save_sample(nets: Networks | GeneratorAverage, run: Placement, fixed: tuple[torch.Tensor, torch.Tensor],
                path: Path) -> Path:
    """The sample grid of `fixed` through the generators a run translates with (its average, when it keeps one)."""
    with torch.no_grad(), run.autocast():
        real_a, real_b = (batch.to(run.device, memory_format=run.memory_format) for batch in fixed)
        fake_b, fake_a = nets.G_ab(real_a), nets.G_ba(real_b)
        rec_a, rec_b = nets.G_ba(fake_b), nets.G_ab(fake_a)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample_grid([real_a, fake_b, rec_a], [real_b, fake_a, rec_b]).save(path)
    return path


def sample_grid(row_a: list[torch.Tensor], row_b: list[torch.Tensor]) -> Image.Image:
    """One row per fixed sample: real A | fake B | rec A | real B | fake A | rec B."""
    columns = [*row_a, *row_b]  # each (N, C, H, W)
    n, _, h, w = columns[0].shape
    grid = Image.new("RGB", (w * len(columns), h * n), "white")
    for col, images in enumerate(columns):
        for row in range(n):
            grid.paste(to_pil(images[row]).convert("RGB"), (col * w, row * h))
    return grid
