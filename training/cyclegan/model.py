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

import copy
import math
import random
from typing import NamedTuple

import torch
from torch import nn

from .config import SELF_ENSEMBLES, CycleGANConfig

RESIDUAL_CLAMP = 0.999  # atanh(0.999) = 3.8: inputs are pulled this far in from +-1
COLOUR_HEAD_WIDTH = 16  # hidden channels of the per-pixel colour path
# What a discriminator returns: patch scores, or (patch scores, pixel scores) with a pixel judge.
Scores = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


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
                 residual: bool = False, upsample: str = "transpose", colour_head: bool = False,
                 colour_features: int = 0) -> None:
        super().__init__()
        if residual and input_nc != output_nc:
            raise ValueError("a residual generator needs the same channel count in both domains")
        if colour_head and not residual:
            raise ValueError("a colour head needs a residual generator")
        self.residual = residual
        self.input_nc = input_nc
        # A function of each pixel's own colour, beside the body, which sees colour only through
        # instance norm; None when off, so a paper generator's state dict is the reference's.
        self.colour: nn.Sequential | None = None
        if colour_head:
            self.colour = nn.Sequential(*colour_input(input_nc, COLOUR_HEAD_WIDTH, colour_features), nn.LeakyReLU(0.2),
                                        nn.Conv2d(COLOUR_HEAD_WIDTH, output_nc, kernel_size=1))
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
            delta = self.model(x)
            if self.colour is not None:
                delta = delta + self.colour(x)  # (B, C, H, W), each pixel from its own colour alone
            return torch.tanh(torch.atanh(x.clamp(-RESIDUAL_CLAMP, RESIDUAL_CLAMP)) + delta)
        return self.model(x)  # (B, input_nc, H, W) -> (B, output_nc, H, W), in [-1, 1]

    def start_at_identity(self) -> None:
        """Zero the last conv of a residual generator (and of its colour path), so that it starts as the
        identity map. The colour path's first conv keeps PyTorch's default init: with the paper's
        N(0, 0.02) its features would be too small for the zeroed conv after it to learn quickly."""
        assert self.residual
        lasts = [self.model[-1]]
        if self.colour is not None:
            next(m for m in self.colour if isinstance(m, nn.Conv2d)).reset_parameters()
            lasts.append(self.colour[-1])
        for last in lasts:
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)


class ColourFeatures(nn.Module):
    """Fourier features of each pixel's colour (Tancik et al., "Fourier Features Let Networks Learn High
    Frequency Functions in Low Dimensional Domains", NeurIPS 2020): every channel value v in [-1, 1] is
    kept and joined by sin(pi k v) and cos(pi k v) for k = 1..frequencies. A 1x1 conv on these can make
    a function of colour that changes quickly, a posterised palette or a sharp tone curve, which it
    can hardly make from v alone. No weights: the frequencies are fixed."""

    def __init__(self, frequencies: int) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.arange(1, frequencies + 1, dtype=torch.float32) * math.pi, persistent=False)

    def channels(self, input_nc: int) -> int:
        return input_nc * (1 + 2 * len(self.freqs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x.unsqueeze(2) * self.freqs.view(1, 1, -1, 1, 1).to(x.dtype)  # (B, C, K, H, W)
        return torch.cat([x, angles.sin().flatten(1, 2), angles.cos().flatten(1, 2)], 1)  # (B, C (1 + 2K), H, W)


def colour_input(input_nc: int, width: int, frequencies: int) -> list[nn.Module]:
    """The first layer of a per-pixel colour path: a 1x1 conv of the colour, or of its Fourier features
    when `frequencies` > 0 (without them the layers, and so the state dict, are as before)."""
    if not frequencies:
        return [nn.Conv2d(input_nc, width, kernel_size=1)]
    features = ColourFeatures(frequencies)
    return [features, nn.Conv2d(features.channels(input_nc), width, kernel_size=1)]


class SelfEnsemble(nn.Module):
    """The mean of a generator's outputs over flips and quarter turns of its input, each turned back: the
    geometric self-ensemble of Lim et al. ("Enhanced Deep Residual Networks for Single Image
    Super-Resolution", 2017). What the generator does because of the picture survives the mean; texture
    it adds at random, different under each turn, averages away. `passes` is 1 (the generator alone), 2
    (and the left-right mirror), 4 (and both up-down flips) or 8 (and the four transposed versions)."""

    def __init__(self, generator: nn.Module, passes: int) -> None:
        super().__init__()
        if passes not in SELF_ENSEMBLES:
            raise ValueError(f"passes must be 1, 2, 4 or 8, not {passes}")
        self.generator = generator
        self.passes = passes
        self.input_nc = getattr(generator, "input_nc", None)  # None: translate reads the first conv, as for the bare module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for index in range(self.passes):
            transposed, flips = index >= 4, [(), (-1,), (-2,), (-1, -2)][index % 4]
            y = x.transpose(-1, -2) if transposed else x
            y = self.generator(y.flip(flips) if flips else y)
            y = y.flip(flips) if flips else y
            y = y.transpose(-1, -2) if transposed else y
            total = y if total is None else total + y
        assert total is not None
        return total / self.passes  # (B, C, H, W)


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies overlapping 70x70 patches (n_layers=3) as real or fake (Isola et al. 2017)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, spectral_norm: bool = False,
                 pixel: bool = False, colour_features: int = 0) -> None:
        super().__init__()
        # Off in the paper. A second judge of each pixel's colour alone (1x1 convs, no norm: the
        # "PixelGAN" of Isola et al. 2017, pix2pix's `--netD pixel`), beside the PatchGAN, whose instance
        # norm hides each image's colour statistics from it. None when off, so the state dict is the
        # reference's.
        self.pixel: nn.Sequential | None = None
        if pixel:
            self.pixel = nn.Sequential(
                *colour_input(input_nc, ndf, colour_features), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, kernel_size=1), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, kernel_size=1),
            )
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
                nn.Identity() if spectral_norm else nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        self.spectral_norm = spectral_norm

    def apply_spectral_norm(self) -> None:
        """Spectral-normalise every conv (Miyato et al. 2018), once the weights are initialised: the
        power iteration's vectors are then drawn for the weights it will normalise."""
        for path in (self.model, self.pixel):
            for index, module in enumerate(path or ()):
                if isinstance(module, nn.Conv2d):
                    path[index] = nn.utils.parametrizations.spectral_norm(module)

    def forward(self, x: torch.Tensor) -> Scores:
        patches = self.model(x)  # (B, C, 256, 256) -> (B, 1, 30, 30) patch scores for n_layers=3
        if self.pixel is None:
            return patches
        return patches, self.pixel(x)  # and (B, 1, 256, 256) pixel scores


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
    source, target = (cfg.input_nc, cfg.output_nc) if direction == "AB" else (cfg.output_nc, cfg.input_nc)
    return ResnetGenerator(source, target, cfg.ngf, cfg.n_blocks, bool(cfg.residual), cfg.upsample,
                           bool(cfg.colour_head), int(cfg.colour_features or 0))


def build_discriminator(cfg: CycleGANConfig, channels: int) -> PatchDiscriminator:
    """A freshly initialised PatchGAN for images of `channels` channels."""
    net = init_weights(PatchDiscriminator(channels, cfg.ndf, cfg.n_layers_d, bool(cfg.spectral_norm), bool(cfg.pixel_d),
                                          int(cfg.colour_features or 0)))
    if cfg.spectral_norm:
        net.apply_spectral_norm()
    return net


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
    return Networks(g_ab, g_ba, build_discriminator(cfg, cfg.input_nc), build_discriminator(cfg, cfg.output_nc))


class GeneratorAverage:
    """An exponential moving average of both generators' weights, updated after every generator step:
    avg <- decay * avg + (1 - decay) * weights (Yazici et al., "The Unusual Effectiveness of Averaging in
    GAN Training", ICLR 2019; the averaged generator of Karras et al. 2018). The average smooths out
    what the weights do from step to step as the discriminators chase them, and it is what a run with
    `ema_decay` translates with: sample grids, exports and evaluations use it. It starts as a copy of
    the generators it follows."""

    def __init__(self, nets: Networks, decay: float) -> None:
        self.decay = decay
        self.G_ab = copy.deepcopy(nets.G_ab).eval().requires_grad_(False)
        self.G_ba = copy.deepcopy(nets.G_ba).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, nets: Networks) -> None:
        """One step of the average towards `nets`' generators: one fused lerp over all their tensors (every
        iteration of a run, so not one kernel per tensor on a GPU)."""
        kept = [*self.G_ab.parameters(), *self.G_ba.parameters()]
        weights = [*nets.G_ab.parameters(), *nets.G_ba.parameters()]
        assert len(kept) == len(weights)
        torch._foreach_lerp_(kept, weights, 1 - self.decay)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"G_ab": self.G_ab.state_dict(), "G_ba": self.G_ba.state_dict()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.G_ab.load_state_dict(state["G_ab"])
        self.G_ba.load_state_dict(state["G_ba"])


class DiffAugment(nn.Module):
    """Differentiable augmentation (Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for
    Data-Efficient GAN Training", NeurIPS 2020), written afresh from the paper.

    Applied to every image a discriminator sees, real or fake, in both the discriminator's and the
    generators' steps, with new random parameters per image and call. Every transform is made of
    differentiable tensor operations, so the generators get gradients through it. Images in [-1, 1]:
      color        brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5)
      translation  shift by up to 1/8 of the side each way, zeros shifted in
      cutout       one square of half the side, at a random place, set to zero
    """

    def __init__(self, policy: str = "none") -> None:
        super().__init__()
        transforms = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}
        self.transforms = [t for name in policy.split(",") if name != "none" for t in transforms[name]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x  # (B, C, H, W), the same shape


def _per_image(x: torch.Tensor) -> torch.Tensor:
    """One uniform [0, 1) number per image, shaped to broadcast over (B, C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_per_image(x) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    grey = x.mean(dim=1, keepdim=True)
    return (x - grey) * (_per_image(x) * 2) + grey


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(x) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side in each direction, filling with zeros."""
    b, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy  # (B, H, 1): source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx  # (B, 1, W)
    padded = nn.functional.pad(x, (1, 1, 1, 1))  # a zero border: out-of-range indices read it
    rows, cols = (rows + 1).clamp(0, h + 1), (cols + 1).clamp(0, w + 1)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` of the side per image, centred anywhere in it (clipped at the borders)."""
    b, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_y % 2), (b, 1, 1), device=x.device) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (b, 1, 1), device=x.device) - size_x // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


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


def lsgan_loss(prediction: Scores, target_is_real: bool, pixel_weight: float = 1.0) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean (D(x) - 1)^2 for real targets, D(x)^2 for fake.

    The paper replaces the negative log likelihood with this for stabler training (section 4).
    Computed in fp32 whatever the autocast precision of the discriminator. A discriminator with a
    pixel judge gives (patch scores, pixel scores): the patch loss plus `pixel_weight` times the pixel one.
    """
    if isinstance(prediction, tuple):
        patches, pixels = prediction
        return lsgan_loss(patches, target_is_real) + pixel_weight * lsgan_loss(pixels, target_is_real)
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return nn.functional.mse_loss(prediction, target)


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in fp32, for the cycle (eq. 2) and identity terms."""
    return (x.float() - y.float()).abs().mean()


def low_pass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each channel (kernel 2 * ceil(2 sigma) + 1, reflected borders); sigma 0 returns x.
    Differentiable, for the `cycle_blur` terms."""
    if not sigma:
        return x
    radius = max(1, math.ceil(2 * sigma))
    radius = min(radius, (min(x.shape[-2:]) - 1))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    channels = x.shape[1]
    x = nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


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
