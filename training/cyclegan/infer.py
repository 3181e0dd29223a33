"""Using a trained CycleGAN: load a generator from a checkpoint, translate an image, export the generators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from . import checkpoint
from .config import CycleGANConfig
from .data import pil_to_uint8, to_model_range, to_pil
from .model import SelfEnsemble, build_generator

MIN_TRANSLATE_SIDE = 16


def load_generator(checkpoint_path: str | Path, direction: str, device: str = "cpu") -> nn.Module:
    """The A->B ("AB") or B->A ("BA") generator of a checkpoint or a generator export, in eval mode: the
    moving average of its weights when the run kept one (`ema_decay`), else the trained weights; wrapped
    in a `SelfEnsemble` of the config's passes when `self_ensemble` is above 1."""
    if direction not in ("AB", "BA"):
        raise ValueError('direction must be "AB" or "BA"')
    return _generator(checkpoint.read(checkpoint_path), direction, device)


def load_generators(checkpoint_path: str | Path, device: str = "cpu") -> dict[str, nn.Module]:
    """Both generators, {"AB": ..., "BA": ...}, as `load_generator` gives them, from one read of the file
    (a full checkpoint holds the optimisers and image pools too)."""
    state = checkpoint.read(checkpoint_path)
    return {direction: _generator(state, direction, device) for direction in ("AB", "BA")}


def _generator(state: dict[str, Any], direction: str, device: str) -> nn.Module:
    cfg = CycleGANConfig.from_dict(state["config"])
    net = build_generator(cfg, direction)
    net.load_state_dict(generator_weights(state)["G_ab" if direction == "AB" else "G_ba"])
    translator = SelfEnsemble(net, cfg.self_ensemble) if (cfg.self_ensemble or 1) > 1 else net
    return translator.to(device).eval()


def generator_weights(state: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """{"G_ab": ..., "G_ba": ...}: the weights a checkpoint translates with (its average, when it has one)."""
    return state.get("G_average") or {"G_ab": state["G_ab"], "G_ba": state["G_ba"]}


def export_generators(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write only the config and both generators (a fraction of a full checkpoint) for download: the
    weights the run translates with, so an export of an averaging run holds the average."""
    state = checkpoint.read(checkpoint_path)
    return checkpoint.write(Path(out_path), {"config": state["config"], "step": state["step"],
                                             **generator_weights(state)})


@torch.no_grad()
def translate(generator: nn.Module, image: Image.Image) -> Image.Image:
    """Translate a whole image at its own size; the output has the input's width and height.

    The generator downsamples twice, so the input is padded (reflecting its borders) to a multiple
    of 4 and the result cropped back.
    """
    parameter = next(generator.parameters())
    # Winnow's generators (and a SelfEnsemble of one) say their channels; another module's first conv does.
    channels = getattr(generator, "input_nc", None) or (parameter.shape[1] if parameter.dim() == 4 else 3)
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
