"""CycleGAN: unpaired image-to-image translation with cycle-consistent adversarial networks.

Zhu, Park, Isola and Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV 2017 (arXiv:1703.10593). The architecture, losses and defaults follow the paper and
its reference implementation (github.com/junyanz/pytorch-CycleGAN-and-pix2pix); this is a fresh,
smaller rewrite of the same maths, not a copy of that code.

Names map to the paper as follows:
    G_ab = G   : A -> B generator          (the reference code's netG_A)
    G_ba = F   : B -> A generator          (netG_B)
    D_a  = D_X : judges images of domain A (netD_B in the reference)
    D_b  = D_Y : judges images of domain B (netD_A in the reference)

Torch only: nothing in cyclegan/ imports Django, so it runs under torchrun or a notebook as is.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UPSAMPLES = ("transpose", "resize")
RESIDUAL_CLAMP = 0.999  # atanh(0.999) = 3.8: inputs are pulled this far in from +-1


@dataclass
class CycleGANConfig:
    """Every knob of a run. The defaults are the paper's; speed settings never change the model."""

    # Data: random resize to load_size, random crop to image_size, random horizontal flip.
    image_size: int = 256
    load_size: int | None = None  # None: 286 for 256, i.e. image_size * 286 / 256, as the reference does
    flip: bool = True
    # Architecture.
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64  # generator width of the first conv layer
    ndf: int = 64  # discriminator width of the first conv layer
    n_blocks: int | None = None  # None: 9 residual blocks, or 6 when image_size <= 128 (paper, section 4)
    n_layers_d: int = 3  # 3 strided convs -> 70x70 receptive field (PatchGAN)
    # Off in the paper. On: each generator predicts a change to its input (added before the final tanh,
    # whose last conv starts at zero), so training starts from the identity map instead of noise. For
    # mappings that keep most of the picture (style, colour, cleanup) it needs far fewer steps.
    residual: bool = False
    # How the generator doubles resolution: "transpose" (the paper's fractionally strided conv) or
    # "resize" (nearest-neighbour x2 then a 3x3 conv, Odena et al. 2016), which cannot make the
    # checkerboard artefacts a transposed conv makes early in training.
    upsample: str = "transpose"
    # Objective (paper eq. 3, plus the identity term of section 5.2).
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # relative to lambda_cycle, as in the reference
    pool_size: int = 50  # history of generated images shown to the discriminators (Shrivastava et al.)
    # Optimisation: Adam, lr constant for `epochs`, then linear decay to 0 over `decay_epochs`.
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 1
    epochs: int = 100
    decay_epochs: int = 100
    seed: int = 0
    # How it runs (never what it computes).
    device: str | None = None  # None: cuda when available, else cpu
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32, bf16, fp16
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False  # torch.compile the four networks
    num_workers: int = 4
    time_limit_s: float | None = None  # stop (with a checkpoint) after this much wall time
    # Bookkeeping.
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        # Resolve the size-dependent defaults once, so a saved config states exactly what ran.
        if self.load_size is None:
            self.load_size = round(self.image_size * 286 / 256)
        if self.n_blocks is None:
            self.n_blocks = 6 if self.image_size <= 128 else 9
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first nonsense value and what would be accepted."""
        checks: list[tuple[bool, str]] = [
            (self.image_size >= 16 and self.image_size % 4 == 0, "image_size must be a multiple of 4, at least 16"),
            (self.load_size is not None and self.load_size >= self.image_size, "load_size must be >= image_size"),
            (self.ngf >= 1 and self.ndf >= 1, "ngf and ndf must be positive"),
            (self.n_blocks is not None and 1 <= self.n_blocks <= 32, "n_blocks must be between 1 and 32"),
            (1 <= self.n_layers_d <= 6, "n_layers_d must be between 1 and 6"),
            (self.lambda_cycle >= 0 and self.lambda_identity >= 0, "loss weights must not be negative"),
            (
                self.lambda_identity == 0 or self.input_nc == self.output_nc,
                "lambda_identity needs the same channel count in both domains (set it to 0)",
            ),
            (not self.residual or self.input_nc == self.output_nc, "residual needs the same channel count in both domains"),
            (self.upsample in UPSAMPLES, f"upsample must be one of {', '.join(UPSAMPLES)}"),
            (
                all(isinstance(getattr(self, name), bool) for name in ("flip", "residual", "compile"))
                and self.channels_last in (None, True, False),
                "flip, residual, compile and channels_last must be true or false",
            ),
            (self.pool_size >= 0, "pool_size must not be negative"),
            (0 < self.lr <= 1, "lr must be in (0, 1]"),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must be in [0, 1)"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.epochs >= 0 and self.decay_epochs >= 0, "epochs and decay_epochs must not be negative"),
            (self.epochs + self.decay_epochs >= 1, "epochs + decay_epochs must be at least 1"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.num_workers >= 0, "num_workers must not be negative"),
            (self.time_limit_s is None or self.time_limit_s > 0, "time_limit_s must be positive"),
            (min(self.log_every, self.sample_every, self.checkpoint_every) >= 1, "intervals must be at least 1"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleGANConfig:
        """Build from a saved dict, ignoring keys a newer version may have added."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class ResnetBlock(nn.Module):
    """Two 3x3 convs with a skip connection; reflection padding avoids border artefacts."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # Instance norm has no affine shift to absorb a bias, so the convs keep theirs (as the reference does).
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.InstanceNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, dim, H, W)


class ResnetGenerator(nn.Module):
    """Johnson et al. 2016 style: c7s1-64, d128, d256, n x R256, u128, u64, c7s1-3 (paper appendix 7.2)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 residual: bool = False, upsample: str = "transpose") -> None:
        super().__init__()
        if residual and input_nc != output_nc:
            raise ValueError("a residual generator needs the same channel count in both domains")
        self.residual = residual
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]  # (B, ngf, H, W)
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                nn.InstanceNorm2d(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]  # (B, ngf * 4, H / 4, W / 4) after both
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # two fractionally strided upsamplings (or resize + conv)
            if upsample == "resize":
                up: list[nn.Module] = [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, padding=1),
                ]
            else:
                up = [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1)]
            layers += [*up, nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(inplace=True)]  # (B, ngf, H, W) after both
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7)]
        if not residual:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            # tanh(atanh(x) + delta): delta = 0 is the identity; the input is kept off +-1, where atanh is infinite.
            return torch.tanh(torch.atanh(x.clamp(-RESIDUAL_CLAMP, RESIDUAL_CLAMP)) + self.model(x))
        return self.model(x)  # (B, input_nc, H, W) -> (B, output_nc, H, W), in [-1, 1]

    def start_at_identity(self) -> None:
        """Zero the last conv of a residual generator, so that it starts as the identity map."""
        last = self.model[-1]
        assert self.residual and isinstance(last, nn.Conv2d)
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies overlapping 70x70 patches (n_layers=3) as real or fake (Isola et al. 2017)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]  # C64 has no norm
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last feature layer keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C, 256, 256) -> (B, 1, 30, 30) patch scores for n_layers=3


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Conv weights from N(0, 0.02) and zero biases, the paper's initialisation."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def build_generator(cfg: CycleGANConfig, direction: str = "AB") -> ResnetGenerator:
    """G_ab for direction "AB", G_ba for "BA" (channel counts swap when the domains differ)."""
    assert cfg.n_blocks is not None  # resolved in __post_init__
    if direction == "AB":
        return ResnetGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.n_blocks, cfg.residual, cfg.upsample)
    return ResnetGenerator(cfg.output_nc, cfg.input_nc, cfg.ngf, cfg.n_blocks, cfg.residual, cfg.upsample)


def build_networks(
    cfg: CycleGANConfig,
) -> tuple[ResnetGenerator, ResnetGenerator, PatchDiscriminator, PatchDiscriminator]:
    """G_ab, G_ba, D_a, D_b, freshly initialised."""
    g_ab = init_weights(build_generator(cfg, "AB"))
    g_ba = init_weights(build_generator(cfg, "BA"))
    if cfg.residual:
        g_ab.start_at_identity()
        g_ba.start_at_identity()
    d_a = init_weights(PatchDiscriminator(cfg.input_nc, cfg.ndf, cfg.n_layers_d))
    d_b = init_weights(PatchDiscriminator(cfg.output_nc, cfg.ndf, cfg.n_layers_d))
    return g_ab, g_ba, d_a, d_b


class ImagePool:
    """A buffer of past generated images (Shrivastava et al. 2017, paper section 4).

    Until the pool is full every image goes in and comes back out. Afterwards each image, with
    probability 1/2, is swapped for a random stored one (returned in its place) or passed through.
    Updating the discriminators on this history rather than only the latest generator's output
    reduces model oscillation. Uses torch's RNG so a checkpoint's rng state covers it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def state(self) -> torch.Tensor:
        """The stored images as one CPU tensor (N, C, H, W), for a checkpoint; N = 0 when empty."""
        if not self.images:
            return torch.empty(0)
        return torch.cat(self.images, 0).cpu()

    def load_state(self, images: torch.Tensor | None, device: torch.device, memory_format: torch.memory_format) -> None:
        """Refill from `state()`'s tensor (None or empty: start empty), keeping at most `size` images."""
        self.images = []
        if images is not None and images.numel():
            images = images.to(device).contiguous(memory_format=memory_format)
            self.images = list(images[: self.size].split(1))  # (1, C, H, W) each, as `query` stores them

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():  # (C, H, W) each
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                index = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)  # (B, C, H, W)


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean (D(x) - 1)^2 for real targets, D(x)^2 for fake.

    The paper replaces the negative log likelihood with this for stabler training (section 4).
    Computed in fp32 whatever the autocast precision of the discriminator.
    """
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return nn.functional.mse_loss(prediction, target)


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in fp32, for the cycle (eq. 2) and identity terms."""
    return (x.float() - y.float()).abs().mean()


def lr_factor(step: int, steps_per_epoch: int, epochs: int, decay_epochs: int) -> float:
    """Multiplier of the base lr at iteration `step`: 1 for `epochs`, then linear to 0 over `decay_epochs`.

    The reference steps this per epoch; stepping per iteration follows the same line without the
    staircase, and reaches 0 exactly at the end of training.
    """
    constant = epochs * steps_per_epoch
    decay = decay_epochs * steps_per_epoch
    if step < constant or decay == 0:
        return 1.0
    return max(0.0, 1.0 - (step - constant) / decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
