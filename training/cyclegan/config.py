"""Every knob of a CycleGAN run, with its default, bounds and meaning, in one dataclass; no torch here.

The defaults are the paper's (Zhu et al. 2017, and its reference implementation); speed settings
never change the model. A config checks itself when it is made (`__post_init__`), raising
`ConfigError`, a ValueError naming the field, so the command line, a notebook and the REST API
(training/serializers.py builds its fields from `knobs()`) refuse the same values the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UPSAMPLES = ("transpose", "resize")
SELF_ENSEMBLES = (1, 2, 4, 8)  # passes of a self-ensembled translation: identity, + h-flip, + v-flips, + quarter turns
# DiffAugment policies (Zhao et al. 2020): which differentiable augmentations every image shown to a
# discriminator, real or fake, goes through. "color" is their brightness, saturation and contrast jitter.
DIFFAUG_POLICIES = ("none", "translation", "translation,cutout", "color,translation,cutout")

# Named recipes: the values a recipe gives the knobs declared with a None default below ("from the
# recipe"). An explicit value always wins, and a resolved config states every value, so a saved config
# means the same thing whatever later recipes say. "paper" is Zhu et al. 2017 exactly; "small-data" is
# what docs/BENCHMARKS.md ("Small splits") measured to learn more from a few hundred images per domain.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"residual": False, "colour_head": False, "lambda_identity": 0.5, "diffaug": "none",
              "spectral_norm": False, "r1_gamma": 0.0, "lr_d_ratio": 1.0, "pixel_d": 0.0, "cycle_blur": 0.0,
              "ema_decay": 0.0, "colour_features": 0, "self_ensemble": 1},
    "small-data": {"residual": True, "colour_head": True, "lambda_identity": 0.1, "diffaug": "none",
                   "spectral_norm": False, "r1_gamma": 0.0, "lr_d_ratio": 1.0, "pixel_d": 1.0,
                   "cycle_blur": 0.0, "ema_decay": 0.0, "colour_features": 0, "self_ensemble": 8},
}


class ConfigError(ValueError):
    """A value the config refuses; `field` names it (None when the fault is between fields)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Knob:
    """What a field accepts: its type, bounds (`gt` is an exclusive minimum) or choices, whether
    None is allowed, whether an API request may set it, and what it means."""

    kind: type
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    api: bool = True
    help: str = ""


def knob(default: Any, kind: type, **spec: Any) -> Any:
    return field(default=default, metadata={"knob": Knob(kind, **spec)})


@dataclass
class CycleGANConfig:
    """Every knob of a run. The defaults are the paper's; speed settings never change the model."""

    # The recipe fills the knobs left at None that it names (RECIPES above); "paper" by default.
    recipe: str = knob("paper", str, choices=tuple(RECIPES),
                       help="paper (Zhu et al. 2017, the default) or small-data (docs/TRAINING.md); explicit knobs win")

    # Data: random resize to load_size, random crop to image_size, random horizontal flip.
    image_size: int = knob(256, int, min=16, max=1024, help="crop size in pixels, a multiple of 4 (default 256)")
    load_size: int | None = knob(None, int, min=16, max=2048, nullable=True,
                                 help="resize before the random crop (default image_size * 286 / 256)")
    flip: bool = knob(True, bool, help="random horizontal flips")
    # Architecture. Winnow's images are RGB; other channel counts are for the command line.
    input_nc: int = knob(3, int, min=1, max=4, api=False)
    output_nc: int = knob(3, int, min=1, max=4, api=False)
    ngf: int = knob(64, int, min=1, max=256, help="generator width of the first conv layer (default 64)")
    ndf: int = knob(64, int, min=1, max=256, help="discriminator width of the first conv layer (default 64)")
    n_blocks: int | None = knob(None, int, min=1, max=32, nullable=True,
                                help="residual blocks (default 9, or 6 for image_size <= 128, paper section 4)")
    n_layers_d: int = knob(3, int, min=1, max=6, help="strided convs of the PatchGAN; 3 = 70x70 receptive field")
    # Off in the paper. Spectral normalisation (Miyato et al. 2018) of every discriminator conv, in place
    # of the discriminator's instance norm (which, like the generator's, hides each image's colour
    # statistics from it): a Lipschitz-bounded discriminator that still sees absolute colour.
    spectral_norm: bool | None = knob(None, bool, nullable=True,
                                      help="spectral norm on every discriminator conv, instead of instance norm "
                                           "(default: the recipe's; paper: false)")
    # Off in the paper. On: each generator predicts a change to its input (added before the final tanh,
    # whose last conv starts at zero), so training starts from the identity map instead of noise. For
    # mappings that keep most of the picture (style, colour, cleanup) it needs far fewer steps.
    residual: bool | None = knob(None, bool, nullable=True,
                                 help="generators predict a change to their input and start as the identity "
                                      "(default: the recipe's; paper: false)")
    # Off in the paper. A residual generator's body sees its input only through instance norm, which
    # removes each image's colour statistics, so a change that depends on absolute colour (a grade, a
    # tone curve) is hard for it. On: a per-pixel colour path (two 1x1 convs, the last starting at zero)
    # adds a learned function of each pixel's own colour, the per-pixel colour transforms of image
    # enhancement networks (Gharbi et al. 2017, HDRNet). Needs `residual`.
    colour_head: bool | None = knob(None, bool, nullable=True,
                                    help="residual generators add a per-pixel colour path, 1x1 convs starting at "
                                         "zero (default: the recipe's; paper: false)")
    # "transpose" (the paper's fractionally strided conv) or "resize" (nearest-neighbour x2 then a 3x3
    # conv, Odena et al. 2016), which cannot make the checkerboard artefacts a transposed conv makes.
    upsample: str = knob("transpose", str, choices=UPSAMPLES,
                         help="transpose (the paper's) or resize: nearest-neighbour x2 then a conv")
    # Objective (paper eq. 3, plus the identity term of section 5.2).
    lambda_cycle: float = knob(10.0, float, min=0, max=1000, help="weight of the cycle loss (default 10)")
    lambda_identity: float | None = knob(None, float, min=0, max=100, nullable=True,
                                         help="weight of the identity loss, relative to lambda_cycle "
                                              "(default: the recipe's; paper: 0.5)")
    pool_size: int = knob(50, int, min=0, max=1000,
                          help="past fakes shown to the discriminators (Shrivastava et al.; default 50)")
    # Off in the paper. Differentiable augmentation (Zhao et al. 2020): every image a discriminator
    # sees, real, pooled fake or the fake the generator is judged on, goes through the same random,
    # differentiable transforms, so the discriminator cannot memorise a few hundred images.
    diffaug: str | None = knob(None, str, choices=DIFFAUG_POLICIES, nullable=True,
                               help="DiffAugment policy before the discriminators (default: the recipe's; paper: none)")
    # Off in the paper. R1 (Mescheder et al. 2018): gamma / 2 * E|grad D(x_real)|^2 added to each
    # discriminator's loss, which keeps it smooth around the real images.
    r1_gamma: float | None = knob(None, float, min=0, max=1000, nullable=True,
                                  help="R1 penalty weight on real images (default: the recipe's; paper: 0, off)")
    # Off in the paper. Each discriminator gains a pixel judge (1x1 convs, no norm; the PixelGAN of
    # Isola et al. 2017), which sees each pixel's absolute colour, where the PatchGAN's instance norm
    # hides each image's colour statistics; its LSGAN loss is added with this weight (0: no pixel judge).
    pixel_d: float | None = knob(None, float, min=0, max=100, nullable=True,
                                 help="weight of a per-pixel colour discriminator beside the PatchGAN "
                                      "(default: the recipe's; paper: 0, none)")
    # Off in the paper. The per-pixel colour paths (the generators' colour head, the pixel judge) read each
    # channel value v with sin(pi k v) and cos(pi k v) for k = 1..this beside it: Fourier features (Tancik et
    # al. 2020), with which a small network can learn a function of colour that changes quickly (a
    # posterised palette, banding, a sharp tone curve), where from v alone it learns only smooth ones.
    colour_features: int | None = knob(None, int, min=0, max=32, nullable=True,
                                       help="Fourier frequencies of each pixel's colour for the colour head and "
                                            "the pixel judge; 0 = the colour alone (default: the recipe's; paper: 0)")
    # Off in the paper, and not from a paper: the cycle and identity terms compare Gaussian-blurred
    # images (this sigma, in pixels), so a translation may drop detail no inverse could restore
    # (smoothing, posterisation) without paying the L1 term's fixed slope for every pixel it changes.
    cycle_blur: float | None = knob(None, float, min=0, max=8, nullable=True,
                                    help="sigma in pixels of a blur before the cycle and identity L1 "
                                         "(default: the recipe's; paper: 0, off)")
    # Off in the paper. Above 0: an exponential moving average of the generators' weights with this decay
    # (Yazici et al. 2019), updated every step, is what the run translates with (samples, exports,
    # evaluations); checkpoints keep it beside the trained weights.
    ema_decay: float | None = knob(None, float, min=0, max=0.9999, nullable=True,
                                   help="decay of a moving average of the generators' weights, which the run "
                                        "translates with; 0 = off (default: the recipe's; paper: 0)")
    # 1 in the paper. Above 1: every translation the run makes after training (translations, augmentations,
    # evaluations) is the mean of the generator's outputs for this many flips and quarter turns of the
    # input, each turned back (the geometric self-ensemble of Lim et al. 2017), which averages away the
    # texture a GAN generator adds at random. Costs that many passes; training and sample grids use one.
    self_ensemble: int | None = knob(None, int, min=1, max=8, nullable=True,
                                     help="translate with the mean over 1, 2, 4 or 8 flips and quarter turns of the "
                                          "input (default: the recipe's; paper: 1, a single pass)")
    # Optimisation: Adam, lr constant for `epochs`, then linear decay to 0 over `decay_epochs`.
    lr: float = knob(2e-4, float, min=1e-7, max=0.1, help="Adam learning rate (default 2e-4)")
    # 1 in the paper. The discriminators' lr is lr * lr_d_ratio: below 1, a slower discriminator, the
    # two time-scale update rule of Heusel et al. 2017 run the other way round.
    lr_d_ratio: float | None = knob(None, float, gt=0, max=100, nullable=True,
                                    help="discriminator lr = lr * this (default: the recipe's; paper: 1)")
    beta1: float = knob(0.5, float, min=0, max=0.999, help="Adam beta1 (default 0.5)")
    beta2: float = knob(0.999, float, min=0, max=0.9999, help="Adam beta2 (default 0.999)")
    batch_size: int = knob(1, int, min=1, max=256, help="images per domain and step (default 1)")
    epochs: int = knob(100, int, min=0, max=10_000, help="epochs at the constant learning rate (default 100)")
    decay_epochs: int = knob(100, int, min=0, max=10_000, help="epochs of linear decay to 0 (default 100)")
    seed: int = knob(0, int, min=0, max=2**31 - 1)
    # How it runs (never what it computes). The worker, not a request, decides device and loaders.
    device: str | None = knob(None, str, nullable=True, api=False)  # None: cuda when available, else cpu
    precision: str = knob("auto", str, choices=PRECISIONS, help="auto: bf16 autocast on a GPU, fp32 on a CPU")
    channels_last: bool | None = knob(None, bool, nullable=True, help="default: on for a GPU")
    compile: bool = knob(False, bool, help="torch.compile the four networks")
    num_workers: int = knob(4, int, min=0, max=64, api=False)
    time_limit_s: float | None = knob(None, float, gt=0, max=30 * 86400, nullable=True,
                                      help="stop (as succeeded, with a checkpoint) after this much training")
    # Bookkeeping.
    log_every: int = knob(100, int, min=1, max=1_000_000)
    sample_every: int = knob(1000, int, min=1, max=1_000_000)
    checkpoint_every: int = knob(5000, int, min=1, max=1_000_000)
    keep_checkpoints: int = knob(3, int, min=1, max=100)

    def __post_init__(self) -> None:
        self.validate()
        # Resolve the recipe's and the size-dependent defaults once, so a saved config states exactly what ran.
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.load_size is None:
            self.load_size = round(self.image_size * 286 / 256)
        if self.n_blocks is None:
            self.n_blocks = 6 if self.image_size <= 128 else 9
        self.validate_together()

    def validate(self) -> None:
        """Raise ConfigError for the first field of the wrong type or out of its bounds."""
        for name, spec in knobs():
            value = getattr(self, name)
            if value is None and spec.nullable:
                continue
            setattr(self, name, check(name, spec, value))

    def validate_together(self) -> None:
        """Raise ConfigError for values that are fine alone and wrong together."""
        if self.image_size % 4:
            raise ConfigError(f"image_size must be a multiple of 4 (the generator halves it twice), not {self.image_size}",
                              "image_size")
        if self.load_size is not None and self.load_size < self.image_size:
            raise ConfigError(f"load_size must be at least image_size ({self.image_size}), got {self.load_size}",
                              "load_size")
        if self.epochs + self.decay_epochs < 1:
            raise ConfigError("epochs + decay_epochs must be at least 1")
        if self.lambda_identity and self.input_nc != self.output_nc:
            raise ConfigError("lambda_identity needs the same channel count in both domains (set it to 0)",
                              "lambda_identity")
        if self.residual and self.input_nc != self.output_nc:
            raise ConfigError("residual needs the same channel count in both domains", "residual")
        if self.colour_head and not self.residual:
            raise ConfigError("colour_head needs residual generators (set residual to true)", "colour_head")
        if self.self_ensemble not in SELF_ENSEMBLES:
            raise ConfigError(f"self_ensemble must be 1, 2, 4 or 8, not {self.self_ensemble}", "self_ensemble")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleGANConfig:
        """Build from a saved dict, ignoring keys a newer version may have added. A recipe knob the dict does
        not name did not exist when it was saved, so that run trained without it: it takes the paper's value
        (off), not what the recipe says today."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        return cls(**{**RECIPES["paper"], **values})


def knobs() -> Iterator[tuple[str, Knob]]:
    """Each field's name and what it accepts, in declaration order."""
    for f in fields(CycleGANConfig):
        yield f.name, f.metadata["knob"]


def check(name: str, spec: Knob, value: Any) -> Any:
    """The value, as its field's type (an int is a float where a float is asked), or ConfigError."""
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}", name)
        return value
    if spec.choices is not None:
        if value not in spec.choices:
            raise ConfigError(f"{name} must be one of {', '.join(spec.choices)}: {value!r} is not a valid choice", name)
        return value
    if spec.kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}", name)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or (spec.kind is int and not isinstance(value, int)):
        raise ConfigError(f"{name}: a valid {'integer' if spec.kind is int else 'number'} is required, got {value!r}", name)
    value = spec.kind(value)
    if spec.gt is not None and not value > spec.gt:
        raise ConfigError(f"{name} must be greater than {spec.gt:g}, got {value:g}", name)
    if spec.min is not None and value < spec.min:
        # "not negative" for the weights and counts, as a person would say it.
        plain = " (it must not be negative)" if spec.min == 0 else ""
        raise ConfigError(f"{name}: ensure this value is greater than or equal to {spec.min:g}{plain}, got {value:g}",
                          name)
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name}: ensure this value is less than or equal to {spec.max:g}, got {value:g}", name)
    return value
