"""Checkpoints: one self-describing dict holding the whole training state, saved and restored symmetrically.

The dict (format `winnow-cyclegan/1`): `config`, the four networks `G_ab`, `G_ba`, `D_a`, `D_b`
(saved from the uncompiled, unwrapped modules, so the keys are portable), `opt_G`, `opt_D`,
`sched_G`, `sched_D`, `scaler`, `step`, `epoch`, `steps_per_epoch`, `elapsed_s`, the discriminators'
image `pools`, the `rng` state and, for a run with `ema_decay`, `G_average` (the moving average of
both generators' weights, `{"G_ab": ..., "G_ba": ...}`, which inference and exports use). Restoring
all of it makes a stopped and resumed run end with exactly the weights of one that never stopped. A
generator export (infer.py) is the same dict with only `format`, `config`, `G_ab`, `G_ba` and `step`.

Files are written to a temporary name and renamed, so a reader (or a resumed run) never sees half
a file; after each save only the newest `keep` checkpoints stay.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from .config import CycleGANConfig
from .model import ImagePool, Networks

FORMAT = "winnow-cyclegan/1"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


# The optimisation state a checkpoint holds besides the networks, by its key in the dict.
OPTIMISATION_KEYS = ("opt_G", "opt_D", "sched_G", "sched_D", "scaler")


def write(path: Path, state: dict[str, Any]) -> Path:
    """Save a checkpoint dict (adding its format) to `path` whole, or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def read(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint (or generator export) as `write` saved it; refuses files that are not one."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a CycleGAN checkpoint written by this version")
    return state


def save(path: Path, *, cfg: CycleGANConfig, nets: Networks, optimisation: Mapping[str, Stateful],
         pools: Mapping[str, ImagePool], step: int, steps_per_epoch: int, elapsed_s: float, keep: int) -> list[Path]:
    """Write the whole training state at `step`; remove all but the newest `keep` checkpoints of
    the folder. Returns the files removed. `restore` reads back exactly what this writes."""
    cuda = any(p.is_cuda for p in nets.G_ab.parameters())
    write(path, {
        "config": cfg.to_dict(),
        **{name: net.state_dict() for name, net in nets._asdict().items()},
        **{key: stateful.state_dict() for key, stateful in optimisation.items()},  # OPTIMISATION_KEYS, G_average
        "step": step,
        "epoch": step // steps_per_epoch,
        "steps_per_epoch": steps_per_epoch,
        "elapsed_s": elapsed_s,
        # The history of fakes the discriminators are shown (this process's; under DDP, rank 0's).
        "pools": {key: pool.state() for key, pool in pools.items()},
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
    })
    removed = sorted(path.parent.glob("step_*.pt"))[:-keep]
    for old in removed:
        old.unlink(missing_ok=True)
    return removed


def restore(state: dict[str, Any], *, nets: Networks, optimisation: Mapping[str, Stateful],
            pools: Mapping[str, ImagePool], device: torch.device, memory_format: torch.memory_format) -> float:
    """Load what `save` wrote into the networks, optimisation state, pools and RNG; returns the
    training time already spent (`elapsed_s`). Checkpoints from before the pools were saved resume
    with empty pools."""
    for name, net in nets._asdict().items():
        net.load_state_dict(state[name])
    for key in OPTIMISATION_KEYS:
        optimisation[key].load_state_dict(state[key])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if device.type == "cuda" and state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    for key, pool in pools.items():
        pool.load_state(state.get("pools", {}).get(key), device, memory_format)
    return float(state.get("elapsed_s", 0.0))
