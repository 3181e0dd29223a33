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
from typing import NamedTuple

import torch
from torch import nn

from .config import CycleGANConfig

RESIDUAL_CLAMP = 0.999  # atanh(0.999) = 3.8: inputs are pulled this far in from +-1


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


class Networks(NamedTuple):
    """The four networks of a CycleGAN, under the names checkpoints use."""

    G_ab: ResnetGenerator  # G: A -> B
    G_ba: ResnetGenerator  # F: B -> A
    D_a: PatchDiscriminator  # D_X: real A or fake A?
    D_b: PatchDiscriminator  # D_Y: real B or fake B?


def build_networks(cfg: CycleGANConfig) -> Networks:
    """G_ab, G_ba, D_a, D_b, freshly initialised."""
    g_ab = init_weights(build_generator(cfg, "AB"))
    g_ba = init_weights(build_generator(cfg, "BA"))
    if cfg.residual:
        g_ab.start_at_identity()
        g_ba.start_at_identity()
    d_a = init_weights(PatchDiscriminator(cfg.input_nc, cfg.ndf, cfg.n_layers_d))
    d_b = init_weights(PatchDiscriminator(cfg.output_nc, cfg.ndf, cfg.n_layers_d))
    return Networks(g_ab, g_ba, d_a, d_b)


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
