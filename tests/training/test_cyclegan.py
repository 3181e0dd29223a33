"""The torch-only CycleGAN package: model shapes, paper defaults, pool, schedule, training, resume, inference.

CPU, 32x32 images, ngf/ndf 8, a handful of iterations. GPU-only checks skip without CUDA.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.cyclegan import checkpoint
from training.cyclegan.config import ConfigError, CycleGANConfig
from training.cyclegan.data import Domains, UnpairedBatchSampler, load_image
from training.cyclegan.infer import export_generators, load_generator, load_generators, translate
from training.cyclegan.model import (
    ColourFeatures,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    SelfEnsemble,
    build_generator,
    lr_factor,
)
from training.cyclegan.train import LOSS_NAMES, train

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def write_images(folder: Path, n: int, seed: int, size: tuple[int, int] = (48, 40)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / (f"{i}.jpg" if i % 2 else f"{i}.png")  # both decoders
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def domains(tmp_path: Path) -> Domains:
    return Domains(write_images(tmp_path / "a", 4, seed=1), write_images(tmp_path / "b", 6, seed=2))


def tiny(**overrides: object) -> CycleGANConfig:
    settings = dict(
        image_size=32,
        ngf=8,
        ndf=8,
        epochs=1,
        decay_epochs=1,
        batch_size=2,
        num_workers=0,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        keep_checkpoints=2,
        pool_size=4,
    )
    settings.update(overrides)
    return CycleGANConfig(**settings)  # type: ignore[arg-type]


# --- the model --------------------------------------------------------------------------------


def test_config_defaults_are_the_papers() -> None:
    cfg = CycleGANConfig()
    assert (cfg.image_size, cfg.load_size, cfg.n_blocks, cfg.n_layers_d) == (256, 286, 9, 3)
    assert (cfg.ngf, cfg.ndf, cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size) == (64, 64, 10.0, 0.5, 50)
    assert (cfg.lr, cfg.beta1, cfg.batch_size, cfg.epochs, cfg.decay_epochs) == (2e-4, 0.5, 1, 100, 100)
    assert CycleGANConfig(image_size=128).n_blocks == 6
    assert CycleGANConfig(image_size=128, n_blocks=9).n_blocks == 9
    # Every data-efficiency option is off: the paper's generator, discriminator, objective and optimiser.
    assert cfg.recipe == "paper" and (cfg.residual, cfg.colour_head, cfg.upsample) == (False, False, "transpose")
    assert (cfg.diffaug, cfg.spectral_norm, cfg.r1_gamma, cfg.lr_d_ratio) == ("none", False, 0.0, 1.0)
    assert CycleGANConfig(recipe="paper") == cfg


def test_the_paper_recipe_builds_the_reference_networks_exactly() -> None:
    from training.cyclegan.model import build_networks

    nets = build_networks(CycleGANConfig(image_size=32, ngf=8, ndf=8))
    assert not nets.G_ab.residual and nets.G_ab.colour is None and isinstance(nets.G_ab.model[-1], torch.nn.Tanh)
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in nets.D_a.modules())
    assert not any("parametrizations" in key for key in nets.D_a.state_dict())
    # Keys as the reference's (its ResnetBlock's conv_block is our block), so its weights load by renaming.
    assert sorted(nets.G_ab.state_dict()) == sorted(ResnetGenerator(ngf=8, n_blocks=6).state_dict())


def test_a_recipe_fills_the_knobs_left_unset_and_an_explicit_knob_wins() -> None:
    from training.cyclegan.config import RECIPES

    small = CycleGANConfig(recipe="small-data")
    assert {name: getattr(small, name) for name in RECIPES["small-data"]} == RECIPES["small-data"]
    assert small.residual is True and small != CycleGANConfig()
    explicit = CycleGANConfig(recipe="small-data", residual=False, colour_head=False, lambda_identity=0.5)
    assert (explicit.residual, explicit.colour_head, explicit.lambda_identity) == (False, False, 0.5)
    assert CycleGANConfig(lambda_identity=0.0).lambda_identity == 0.0  # paper recipe, one knob changed
    # A saved config states every value, so it means the same whatever the recipes say later.
    assert CycleGANConfig.from_dict(small.to_dict()) == small
    # Only knobs declared "from the recipe" (None by default) may be named by a recipe, and every recipe
    # names the same ones, so switching recipes switches all of them.
    defaults = {f.name: f.default for f in CycleGANConfig.__dataclass_fields__.values()}
    for values in RECIPES.values():
        assert set(values) == set(RECIPES["paper"]) and all(defaults[name] is None for name in values)


def test_a_config_saved_before_the_recipes_loads_as_the_paper() -> None:
    old = CycleGANConfig(image_size=32).to_dict()
    for name in ("recipe", "colour_head", "diffaug", "spectral_norm", "r1_gamma", "lr_d_ratio"):
        del old[name]
    assert CycleGANConfig.from_dict(old) == CycleGANConfig(image_size=32)


def test_a_small_data_config_saved_before_a_recipe_knob_existed_loads_without_it() -> None:
    # A run saved before colour_features and self_ensemble trained (and translates) without them, whatever the
    # recipe says today: its weights have no Fourier inputs to load into.
    old = CycleGANConfig(recipe="small-data", image_size=32).to_dict()
    del old["colour_features"], old["self_ensemble"]
    loaded = CycleGANConfig.from_dict(old)
    assert (loaded.colour_features, loaded.self_ensemble) == (0, 1)
    assert CycleGANConfig(recipe="small-data").self_ensemble == 8  # a new run gets the recipe's value
    assert loaded.residual and loaded.pixel_d == 1.0  # what the saved config states is kept


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 30}, "multiple of 4"),
        ({"colour_features": -1}, "colour_features"),
        ({"colour_features": 33}, "colour_features"),
        ({"self_ensemble": 3}, "self_ensemble must be 1, 2, 4 or 8"),
        ({"self_ensemble": 16}, "self_ensemble"),
        ({"image_size": 64, "load_size": 32}, "load_size"),
        ({"lr": 0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0, "decay_epochs": 0}, "at least 1"),
        ({"precision": "fp8"}, "precision"),
        ({"lambda_cycle": -1}, "negative"),
        ({"input_nc": 1}, "lambda_identity"),
        ({"input_nc": 1, "lambda_identity": 0, "residual": True}, "residual needs the same channel count"),
        ({"residual": "yes"}, "true or false"),
        ({"upsample": "bilinear"}, "upsample must be one of"),
        ({"recipe": "few-shot"}, "recipe must be one of"),
        ({"diffaug": "colour"}, "diffaug must be one of"),
        ({"colour_head": True}, "colour_head needs residual"),
        ({"r1_gamma": -1}, "r1_gamma"),
        ({"lr_d_ratio": 0}, "lr_d_ratio must be greater than 0"),
        ({"spectral_norm": 1}, "true or false"),
    ],
)
def test_config_refuses_nonsense(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CycleGANConfig(**overrides)


def test_config_round_trips_through_a_dict_and_ignores_unknown_keys() -> None:
    cfg = tiny()
    assert CycleGANConfig.from_dict({**cfg.to_dict(), "added_later": 1}) == cfg


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("size", [32, 64])
def test_generator_output_shape_equals_input_shape(size: int, upsample: str) -> None:
    net = ResnetGenerator(ngf=8, n_blocks=2, upsample=upsample)
    x = torch.randn(2, 3, size, size)
    y = net(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1  # tanh


def test_a_residual_generator_starts_as_the_identity_and_learns_a_change() -> None:
    from training.cyclegan.model import build_networks

    cfg = CycleGANConfig(image_size=32, ngf=8, n_blocks=2, residual=True)
    g_ab, g_ba, _, _ = build_networks(cfg)
    x = torch.rand(2, 3, 32, 32) * 1.8 - 0.9  # inside the clamp, so the identity is exact up to float error
    assert torch.allclose(g_ab(x), x, atol=1e-5) and torch.allclose(g_ba(x), x, atol=1e-5)
    assert g_ab(torch.ones(1, 3, 32, 32)).max() <= 1  # +-1 pixels are pulled in, never past the range
    # A few steps towards a darker image move the output, so the zeroed last layer does learn.
    optimiser = torch.optim.Adam(g_ab.parameters(), lr=1e-2)
    for _ in range(5):
        optimiser.zero_grad()
        (g_ab(x) - (x - 0.5).clamp(-1, 1)).abs().mean().backward()
        optimiser.step()
    assert (g_ab(x) - x).mean() < -0.05
    assert not torch.allclose(g_ba(x), g_ab(x))  # separate networks: only G_ab was trained


def test_a_colour_head_starts_at_the_identity_and_learns_a_global_colour_change() -> None:
    from training.cyclegan.model import build_networks

    cfg = CycleGANConfig(image_size=32, ngf=8, n_blocks=1, residual=True, colour_head=True)
    g_ab = build_networks(cfg).G_ab
    assert g_ab.colour is not None
    x = torch.rand(4, 3, 32, 32) * 1.8 - 0.9
    assert torch.allclose(g_ab(x), x, atol=1e-5)
    # The colour path alone is a function of each pixel's own colour: shuffling pixels shuffles its output.
    order = torch.randperm(32 * 32)
    shuffled = x.flatten(2)[..., order].view_as(x)
    assert torch.allclose(g_ab.colour(shuffled).flatten(2), g_ab.colour(x).flatten(2)[..., order], atol=1e-6)
    # A global colour change (swap red and blue, darken) is learnt quickly.
    target = x[:, [2, 1, 0]] * 0.7
    optimiser = torch.optim.Adam(g_ab.parameters(), lr=1e-2)
    before = (g_ab(x) - target).abs().mean().item()
    for _ in range(30):
        optimiser.zero_grad()
        (g_ab(x) - target).abs().mean().backward()
        optimiser.step()
    assert (g_ab(x) - target).abs().mean().item() < before / 2


def test_spectral_norm_replaces_the_discriminators_instance_norm() -> None:
    from training.cyclegan.model import build_discriminator

    net = build_discriminator(CycleGANConfig(image_size=32, ndf=8, spectral_norm=True), 3)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
    net.train()
    for _ in range(20):  # power iterations converge: every conv's weight has spectral norm about 1
        net(torch.randn(1, 3, 32, 32))
    matrix = convs[1].weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, rel=0.05)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)


@pytest.mark.parametrize("policy", ["translation", "translation,cutout", "color,translation,cutout"])
def test_diffaugment_keeps_shapes_changes_images_and_passes_gradients(policy: str) -> None:
    from training.cyclegan.model import DiffAugment

    torch.manual_seed(0)
    x = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = DiffAugment(policy)(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: the generators learn through it
    assert torch.equal(DiffAugment("none")(x), x)


def test_diffaugment_translation_shifts_and_cutout_zeroes_a_square() -> None:
    from training.cyclegan.model import cutout, translation

    torch.manual_seed(1)
    x = torch.arange(32.0).view(1, 1, 1, 32).expand(8, 3, 32, 32) + 1  # each column holds its index + 1
    shifted = translation(x)
    for image in shifted[:, 0]:
        row = image[16]
        kept = row[row > 0]
        assert torch.equal(kept, torch.arange(kept[0].item(), kept[0].item() + len(kept)))  # a shift, zeros elsewhere
        assert len(kept) >= 28  # at most 1/8 of 32 px shifted out
    holes = cutout(torch.ones(8, 3, 32, 32))
    zeroed = (holes[:, 0] == 0).sum(dim=(1, 2))
    assert ((zeroed > 0) & (zeroed <= 16 * 16)).all() and (holes[:, 0] == holes[:, 2]).all()


def test_the_r1_penalty_is_the_squared_gradient_norm_on_real_images() -> None:
    from training.cyclegan.train import r1_penalty

    weight = torch.randn(1, 3, 4, 4, requires_grad=True)
    images = torch.randn(2, 3, 4, 4, requires_grad=True)
    scores = (images * weight).sum(dim=(1, 2, 3))  # D(x) = <w, x>: its gradient is w for every image
    penalty = r1_penalty(scores, images)
    assert penalty.item() == pytest.approx(weight.square().sum().item(), rel=1e-5)
    penalty.backward()  # in the graph: the discriminator's step lowers it (d|w|^2/dw = 2w)
    assert torch.allclose(weight.grad, 2 * weight.detach())


def test_a_pixel_judge_scores_each_pixel_from_its_own_colour_and_weighs_into_the_loss() -> None:
    from training.cyclegan.model import lsgan_loss

    torch.manual_seed(0)
    judge = PatchDiscriminator(ndf=8, pixel=True)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    patches, pixels = judge(images)
    assert patches.shape == (2, 1, 2, 2) and pixels.shape == (2, 1, 32, 32)
    changed = images.clone()
    changed[0, :, 5, 7] = -changed[0, :, 5, 7]  # one pixel's colour
    moved = (judge(changed)[1] != pixels)[:, 0]
    assert moved[0, 5, 7] and moved.sum() == 1  # only that pixel's score: it sees colour, not context
    expected = lsgan_loss(patches, True) + 0.25 * lsgan_loss(pixels, True)
    assert lsgan_loss((patches, pixels), True, 0.25).item() == pytest.approx(expected.item())
    assert PatchDiscriminator(ndf=8).pixel is None  # off: the reference's discriminator, state dict and all
    with pytest.raises(ConfigError, match="pixel_d"):
        CycleGANConfig(pixel_d=-1.0)


def test_the_cycle_blur_keeps_flat_colour_and_forgives_only_fine_detail() -> None:
    from training.cyclegan.model import l1_loss, low_pass

    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.equal(low_pass(flat, 0.0), flat)  # off: the paper's L1 exactly
    assert torch.allclose(low_pass(flat, 2.0), flat, atol=1e-6)  # a colour is kept, borders too
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    detail = torch.randn(1, 3, 32, 32).sign() * 0.2  # pixel-level texture: what smoothing drops
    shifted = image + 0.2  # a colour change: what a grade makes
    assert l1_loss(low_pass(image + detail, 1.5), low_pass(image, 1.5)) < 0.3 * l1_loss(image + detail, image)
    assert l1_loss(low_pass(shifted, 1.5), low_pass(image, 1.5)) == pytest.approx(0.2, abs=1e-4)
    with pytest.raises(ConfigError, match="cycle_blur"):
        CycleGANConfig(cycle_blur=-1.0)
    assert CycleGANConfig(recipe="paper").cycle_blur == 0.0


def test_patch_discriminator_scores_70px_patches() -> None:
    # n_layers 3: three stride-2 convs then two stride-1 4x4 convs -> 256 px in, 30 x 30 patch scores out.
    assert PatchDiscriminator(ndf=8)(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_image_pool_fills_then_swaps_half_the_time() -> None:
    torch.manual_seed(0)
    pool = ImagePool(2)
    first = torch.arange(2, dtype=torch.float).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # not full yet: pass-through, and stored
    assert len(pool.images) == 2
    swapped = passed = 0
    for value in range(10, 210):
        image = torch.full((1, 1, 1, 1), float(value))
        before = sorted(stored.item() for stored in pool.images)
        out = pool.query(image)
        after = sorted(stored.item() for stored in pool.images)
        if torch.equal(out, image):
            passed += 1
            assert after == before  # passed through, pool untouched
        else:
            swapped += 1  # an older image came back and the new one took its place
            assert out.item() in before
            assert after == sorted([v for v in before if v != out.item()] + [float(value)])
        assert len(pool.images) == 2  # never grows past its size
    assert 60 < swapped < 140 and swapped + passed == 200
    assert torch.equal(ImagePool(0).query(first), first)


def test_lr_is_constant_then_decays_linearly_to_zero() -> None:
    # 2 steps per epoch, 2 constant epochs, 2 decay epochs.
    values = [lr_factor(step, 2, 2, 2) for step in range(8)]
    assert values == [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(8, 2, 2, 2) == 0.0
    assert lr_factor(100, 2, 2, 0) == 1.0


# --- the data pipeline ------------------------------------------------------------------------


def test_sampler_is_addressed_by_step_so_a_resume_sees_the_same_batches() -> None:
    fresh = iter(UnpairedBatchSampler(5, 7, batch_size=2, seed=3))
    batches = [next(fresh) for _ in range(9)]
    resumed = iter(UnpairedBatchSampler(5, 7, batch_size=2, seed=3, start_step=4))
    assert [next(resumed) for _ in range(5)] == batches[4:]
    assert all(0 <= a < 5 and 0 <= b < 7 for batch in batches for a, b in batch)


def test_jpeg_draft_decoding_never_goes_below_the_requested_size(tmp_path: Path) -> None:
    path = write_images(tmp_path, 2, seed=4, size=(800, 600))[1]  # the .jpg
    image = load_image(path, size=64)
    assert min(image.size) >= 64 and image.size[0] < 800  # decoded at a reduced scale


def test_an_empty_domain_is_refused(tmp_path: Path) -> None:
    data = Domains(write_images(tmp_path, 2, seed=5), [])
    with pytest.raises(ValueError, match="domain B has no images"):
        train(tiny(), data, tmp_path / "out", lambda m: None, lambda: False)


# --- training ---------------------------------------------------------------------------------


def test_a_short_run_logs_finite_losses_and_writes_samples_and_checkpoints(domains: Domains, tmp_path: Path) -> None:
    logs: list[dict] = []
    samples: list[tuple[Path, int]] = []
    checkpoints: list[tuple[Path, int]] = []
    result = train(
        tiny(),
        domains,
        tmp_path / "run",
        logs.append,
        lambda: False,
        on_sample=lambda path, step: samples.append((path, step)),
        on_checkpoint=lambda path, step, removed: checkpoints.append((path, step)),
    )
    # max(4, 6) images / batch 2 = 3 steps per epoch, 2 epochs.
    assert (result.step, result.total_steps, result.stopped) == (6, 6, "completed")
    assert [m["step"] for m in logs] == [1, 2, 3, 4, 5, 6]
    for metrics in logs:
        assert set(LOSS_NAMES) <= set(metrics)
        assert all(math.isfinite(metrics[name]) for name in LOSS_NAMES)
    assert [m["lr"] for m in logs[:3]] == [2e-4] * 3 and logs[-1]["lr"] < logs[3]["lr"]
    assert [step for _, step in samples] == [2, 4, 6]
    with Image.open(samples[-1][0]) as grid:
        assert grid.size == (6 * 32, 4 * 32)  # real A, fake B, rec A, real B, fake A, rec B; 4 rows
    assert [step for _, step in checkpoints] == [2, 4, 6]
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step_00000004.pt", "step_00000006.pt"]  # keep_checkpoints=2, no temp files left


def test_a_checkpoint_is_self_describing_and_round_trips(domains: Domains, tmp_path: Path) -> None:
    result = train(tiny(), domains, tmp_path / "run", lambda m: None, lambda: False)
    state = checkpoint.read(result.checkpoint)
    assert {
        "config",
        "G_ab",
        "G_ba",
        "D_a",
        "D_b",
        "opt_G",
        "opt_D",
        "sched_G",
        "sched_D",
        "scaler",
        "step",
        "rng",
    } <= set(state)
    assert state["step"] == 6 and CycleGANConfig.from_dict(state["config"]) == tiny()
    assert not any(key.startswith(("_orig_mod", "module.")) for key in state["G_ab"])  # portable keys
    generator = load_generator(result.checkpoint, "BA")
    again = load_generator(export_generators(result.checkpoint, tmp_path / "weights.pt"), "BA")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(generator(x), again(x))
    assert torch.allclose(generator(x), load_generator(result.checkpoint, "BA")(x))


def test_a_residual_resize_run_saves_generators_that_load_and_translate(domains: Domains, tmp_path: Path) -> None:
    cfg = tiny(residual=True, upsample="resize")
    result = train(cfg, domains, tmp_path / "run", lambda m: None, lambda: False)
    generator = load_generator(result.checkpoint, "AB")
    assert generator.residual and any(isinstance(m, torch.nn.Upsample) for m in generator.modules())
    with Image.new("RGB", (40, 36), (200, 30, 30)) as image:
        out = translate(generator, image)
    assert out.size == (40, 36)
    # A few steps from the identity: still close to the input, and not the input exactly.
    pixels = np.asarray(out, dtype=np.int16)
    assert 0 < np.abs(pixels - np.array([200, 30, 30])).mean() < 60


def test_a_run_with_every_data_efficiency_option_is_finite_and_its_checkpoint_loads(domains: Domains,
                                                                                   tmp_path: Path) -> None:
    cfg = tiny(recipe="small-data", diffaug="color,translation,cutout", spectral_norm=True, r1_gamma=1.0,
               lr_d_ratio=0.5, lambda_identity=0.1, pixel_d=1.0, cycle_blur=1.0, colour_features=4)
    logs: list[dict] = []
    result = train(cfg, domains, tmp_path / "run", logs.append, lambda: False)
    assert result.stopped == "completed"
    assert all(math.isfinite(m[name]) for m in logs for name in LOSS_NAMES)
    assert logs[0]["lr"] == 2e-4
    state = checkpoint.read(result.checkpoint)
    assert CycleGANConfig.from_dict(state["config"]) == cfg
    assert state["opt_D"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-4)  # lr * lr_d_ratio
    assert any("parametrizations.weight" in key for key in state["D_a"])
    assert any(key.startswith("pixel.") for key in state["D_b"])  # the pixel judge is saved and resumed
    generator = load_generator(result.checkpoint, "AB")
    assert isinstance(generator, SelfEnsemble) and generator.passes == 8  # the recipe's
    assert generator.generator.colour is not None and isinstance(generator.generator.colour[0], ColourFeatures)
    with Image.new("RGB", (36, 32), (20, 120, 220)) as image:
        assert translate(generator, image).size == (36, 32)
    resumed = train(tiny(**{**cfg.to_dict(), "epochs": 2}), domains, tmp_path / "run", lambda m: None, lambda: False,
                    resume_from=result.checkpoint)
    assert resumed.step > result.step


def test_the_generator_average_follows_the_weights_and_is_what_a_run_translates_with(domains: Domains,
                                                                                     tmp_path: Path) -> None:
    from training.cyclegan.model import GeneratorAverage, build_networks

    assert CycleGANConfig().ema_decay == 0.0 == CycleGANConfig(recipe="small-data").ema_decay  # off in both recipes
    with pytest.raises(ConfigError, match="ema_decay"):
        CycleGANConfig(ema_decay=1.0)  # an average that never moves
    nets = build_networks(tiny())
    average = GeneratorAverage(nets, 0.9)
    for kept, weight in zip(average.G_ab.parameters(), nets.G_ab.parameters(), strict=True):
        assert torch.equal(kept, weight) and kept is not weight and not kept.requires_grad
    before = [p.clone() for p in average.G_ab.parameters()]
    with torch.no_grad():
        for weight in nets.G_ab.parameters():
            weight.add_(1.0)
    average.update(nets)
    followed = zip(average.G_ab.parameters(), before, strict=True)
    assert all(torch.allclose(kept, old + 0.1, atol=1e-6) for kept, old in followed)
    untouched = zip(average.G_ba.parameters(), nets.G_ba.parameters(), strict=True)
    assert all(torch.equal(kept, weight) for kept, weight in untouched)
    # A run with an average: its checkpoint keeps it beside the trained weights, and inference and the
    # export use the average.
    result = train(tiny(ema_decay=0.5), domains, tmp_path / "run", lambda m: None, lambda: False)
    state = checkpoint.read(result.checkpoint)
    kept, trained = state["G_average"]["G_ab"], state["G_ab"]
    assert set(kept) == set(trained) and not all(torch.equal(kept[name], trained[name]) for name in kept)
    generator = load_generator(result.checkpoint, "AB")
    assert all(torch.equal(value, kept[name]) for name, value in generator.state_dict().items())
    both = load_generators(result.checkpoint)  # one read of the file for the two
    assert all(torch.equal(value, kept[name]) for name, value in both["AB"].state_dict().items())
    assert all(torch.equal(value, state["G_average"]["G_ba"][name]) for name, value in both["BA"].state_dict().items())
    exported = checkpoint.read(export_generators(result.checkpoint, tmp_path / "weights.pt"))
    assert set(exported) == {"format", "config", "step", "G_ab", "G_ba"}
    assert all(torch.equal(exported["G_ab"][name], kept[name]) for name in kept)
    assert (tmp_path / "run" / "samples" / "step_00000006.png").is_file()


def test_colour_features_are_the_colour_and_its_sines_and_cosines() -> None:
    x = torch.tensor([-1.0, -0.5, 0.0, 0.25]).view(1, 1, 2, 2).expand(2, 3, 2, 2)  # (B, C, H, W)
    out = ColourFeatures(4)(x)
    assert out.shape == (2, 3 * 9, 2, 2) and ColourFeatures(4).channels(3) == 27
    assert torch.equal(out[:, :3], x)
    # Channel c's sines, then its cosines, frequency k = 1..4, after the colour itself.
    k = torch.arange(1, 5).view(1, 4, 1, 1)
    assert torch.allclose(out[:, 3:7], torch.sin(math.pi * k * x[:, :1]))
    assert torch.allclose(out[:, 15:19], torch.cos(math.pi * k * x[:, :1]))
    # A posterised value sits on a peak of the matching frequency: 8 levels are 2/7 apart in [-1, 1].
    levels = torch.linspace(-1, 1, 8).view(1, 1, 1, 8)
    assert torch.allclose(ColourFeatures(7)(levels)[:, 1 + 7 + 6], torch.full((1, 1, 8), -1.0), atol=1e-5)


def test_colour_features_widen_the_colour_paths_and_leave_the_state_dict_as_it_was_without_them() -> None:
    plain = ResnetGenerator(ngf=8, n_blocks=1, residual=True, colour_head=True)
    with_features = ResnetGenerator(ngf=8, n_blocks=1, residual=True, colour_head=True, colour_features=16)
    assert plain.colour is not None and with_features.colour is not None
    assert list(plain.state_dict()) == list(ResnetGenerator(ngf=8, n_blocks=1, residual=True, colour_head=True,
                                                            colour_features=0).state_dict())
    assert plain.colour[0].in_channels == 3 and with_features.colour[1].in_channels == 3 * 33
    with_features.start_at_identity()  # finds the path's first conv behind the features, zeroes its last
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.allclose(with_features(x), x.clamp(-0.999, 0.999), atol=1e-5)
    judge = PatchDiscriminator(ndf=8, pixel=True, colour_features=16)
    assert judge.pixel is not None and judge.pixel[1].in_channels == 3 * 33
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert judge(image)[1].shape == (1, 1, 32, 32)
    judge.apply_spectral_norm()  # every conv of the pixel path is normalised, the features are left alone
    assert isinstance(judge.pixel[0], ColourFeatures) and judge(image)[1].shape == (1, 1, 32, 32)


class _Tilt(torch.nn.Module):
    """A 'generator' that adds a curved ramp along the width: not symmetric under any flip or turn."""

    input_nc = 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * torch.linspace(0, 1, x.shape[-1]).view(1, 1, 1, -1) ** 2


def test_a_self_ensemble_averages_the_turned_outputs_and_keeps_what_every_turn_agrees_on() -> None:
    x = torch.rand(2, 3, 8, 12) * 2 - 1
    pointwise = torch.nn.Conv2d(3, 3, kernel_size=1)  # a function of each pixel alone: every turn agrees
    for passes in (1, 2, 4, 8):
        ensemble = SelfEnsemble(pointwise, passes)
        assert torch.allclose(ensemble(x), pointwise(x), atol=1e-6)
    along_width = torch.linspace(0, 1, 12).view(1, 1, 1, -1)
    along_height = torch.linspace(0, 1, 8).view(1, 1, -1, 1)
    assert torch.allclose(SelfEnsemble(_Tilt(), 1)(x), x + along_width**2)
    mirrored = (along_width**2 + (1 - along_width) ** 2) / 2  # the ramp and its mirror image
    assert torch.allclose(SelfEnsemble(_Tilt(), 2)(x), x + mirrored, atol=1e-6)
    assert torch.allclose(SelfEnsemble(_Tilt(), 4)(x), x + mirrored, atol=1e-6)  # up-down flips change nothing here
    # The transposed passes add it along the height instead; a non-square image keeps its shape.
    turned = (along_height**2 + (1 - along_height) ** 2) / 2
    eight = SelfEnsemble(_Tilt(), 8)(x)
    assert eight.shape == x.shape and torch.allclose(eight, x + (mirrored + turned) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="passes must be 1, 2, 4 or 8"):
        SelfEnsemble(pointwise, 3)


def test_a_run_with_colour_features_and_a_self_ensemble_translates_with_both(domains: Domains, tmp_path: Path) -> None:
    cfg = tiny(recipe="small-data", colour_features=4, self_ensemble=4)
    result = train(cfg, domains, tmp_path / "run", lambda m: None, lambda: False)
    state = checkpoint.read(result.checkpoint)
    assert state["G_ab"]["colour.1.weight"].shape[1] == 3 * 9 and state["D_b"]["pixel.1.weight"].shape[1] == 3 * 9
    translator = load_generator(result.checkpoint, "AB")
    assert isinstance(translator, SelfEnsemble) and translator.passes == 4
    with Image.new("RGB", (36, 32), (20, 120, 220)) as image:
        assert translate(translator, image).size == (36, 32)
    # A single pass of the same weights differs: the ensemble is what a translation uses.
    single = build_generator(cfg, "AB")
    single.load_state_dict(state["G_ab"])
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(translator(image), single.eval()(image))
        assert torch.allclose(translator(image), SelfEnsemble(single, 4)(image))
    assert set(load_generators(result.checkpoint)) == {"AB", "BA"}


def test_resume_continues_at_the_saved_step(domains: Domains, tmp_path: Path) -> None:
    polls = 0

    def stop_after_three() -> bool:
        nonlocal polls
        polls += 1
        return polls > 3

    first = train(tiny(), domains, tmp_path / "run", lambda m: None, stop_after_three)
    assert (first.stopped, first.step) == ("cancelled", 3)
    assert first.checkpoint is not None and first.checkpoint.name == "step_00000003.pt"  # saved on stop

    logs: list[dict] = []
    second = train(tiny(), domains, tmp_path / "run", logs.append, lambda: False, resume_from=first.checkpoint)
    assert [m["step"] for m in logs] == [4, 5, 6]  # continued, not restarted
    assert (second.stopped, second.step) == ("completed", 6)
    assert logs[0]["lr"] == pytest.approx(2e-4 * lr_factor(3, 3, 1, 1))
    assert checkpoint.read(second.checkpoint)["sched_G"]["last_epoch"] == 6


@pytest.mark.parametrize("ema_decay", [0.0, 0.5])
def test_a_resumed_run_ends_exactly_where_an_unbroken_one_does(domains: Domains, tmp_path: Path,
                                                              ema_decay: float) -> None:
    """Weights, optimisers, schedules, RNG, data order, the discriminators' pools of past fakes and the
    generators' average all come back from the checkpoint, so stopping and resuming changes nothing."""
    unbroken = train(tiny(pool_size=4, ema_decay=ema_decay), domains, tmp_path / "unbroken", lambda m: None,
                     lambda: False)
    polls = 0

    def stop_after_three() -> bool:
        nonlocal polls
        polls += 1
        return polls > 3

    first = train(tiny(pool_size=4, ema_decay=ema_decay), domains, tmp_path / "broken", lambda m: None,
                  stop_after_three)
    saved = checkpoint.read(first.checkpoint)["pools"]
    assert saved["A"].shape[0] == saved["B"].shape[0] == 4  # 3 steps x batch 2, capped at the pool size
    resumed = train(tiny(pool_size=4, ema_decay=ema_decay), domains, tmp_path / "broken", lambda m: None,
                    lambda: False, resume_from=first.checkpoint)
    assert resumed.step == unbroken.step == 6
    for key in ("G_ab", "G_ba", "D_a", "D_b"):
        expected, got = checkpoint.read(unbroken.checkpoint)[key], checkpoint.read(resumed.checkpoint)[key]
        assert all(torch.equal(expected[name], got[name]) for name in expected), key
    expected, got = checkpoint.read(unbroken.checkpoint), checkpoint.read(resumed.checkpoint)
    assert ("G_average" in expected) == ("G_average" in got) == bool(ema_decay)
    for key in ("G_ab", "G_ba") if ema_decay else ():
        average, again = expected["G_average"][key], got["G_average"][key]
        assert all(torch.equal(average[name], again[name]) for name in average), key


def test_a_checkpoint_without_pools_still_resumes(domains: Domains, tmp_path: Path) -> None:
    first = train(tiny(), domains, tmp_path / "run", lambda m: None, lambda: False)
    state = checkpoint.read(first.checkpoint)
    del state["pools"]  # as written before the pools were saved
    torch.save(state, tmp_path / "old.pt")
    again = train(tiny(epochs=2), domains, tmp_path / "run", lambda m: None, lambda: False, resume_from=tmp_path / "old.pt")
    assert again.stopped == "completed" and again.step > first.step


def test_a_time_limit_stops_the_run_with_a_checkpoint(domains: Domains, tmp_path: Path) -> None:
    result = train(tiny(time_limit_s=1e-6), domains, tmp_path / "run", lambda m: None, lambda: False)
    assert result.stopped == "time_limit" and result.step == 0 and result.checkpoint is None


@pytest.mark.parametrize("size", [(37, 23), (64, 48), (16, 17)])
def test_translate_keeps_the_image_size(size: tuple[int, int]) -> None:
    generator = ResnetGenerator(ngf=8, n_blocks=1).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    out = translate(generator, image.convert("L"))  # any mode in, the generator's channels out
    assert out.size == size and out.mode == "RGB"


def test_a_one_channel_generator_translates_in_grey() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    for generator in (ResnetGenerator(1, 1, ngf=8, n_blocks=1).eval(),
                      SelfEnsemble(ResnetGenerator(1, 1, ngf=8, n_blocks=1).eval(), 8),
                      torch.nn.Conv2d(1, 1, kernel_size=1),  # a module that does not say its channels
                      SelfEnsemble(torch.nn.Conv2d(1, 1, kernel_size=1), 8)):  # nor does its ensemble
        out = translate(generator, image)
        assert out.size == (24, 20) and out.mode == "L"


def test_translate_refuses_an_image_too_small_to_pad() -> None:
    with pytest.raises(ValueError, match="at least 16 px"):
        translate(ResnetGenerator(ngf=8, n_blocks=1), Image.new("RGB", (15, 40)))


def test_load_generator_refuses_other_files(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a CycleGAN checkpoint"):
        load_generator(tmp_path / "other.pt", "AB")


# --- GPU --------------------------------------------------------------------------------------


@gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_training_is_finite_in_every_precision(domains: Domains, tmp_path: Path, precision: str) -> None:
    logs: list[dict] = []
    result = train(tiny(precision=precision), domains, tmp_path / "run", logs.append, lambda: False)
    assert result.stopped == "completed"
    assert all(math.isfinite(m[name]) for m in logs for name in LOSS_NAMES)


@gpu
@needs_cuda
def test_compiled_training_saves_uncompiled_keys(domains: Domains, tmp_path: Path) -> None:
    result = train(tiny(compile=True), domains, tmp_path / "run", lambda m: None, lambda: False)
    generator = load_generator(result.checkpoint, "AB", device="cuda")
    assert generator(torch.zeros(1, 3, 32, 32, device="cuda")).shape == (1, 3, 32, 32)


def test_the_command_line_trains_on_two_cpu_processes_under_torchrun(domains: Domains, tmp_path: Path) -> None:
    # The documented multi-GPU launch, on the CPU with the gloo backend: two ranks share each batch.
    # --standalone: a free port of its own, so two suites on one machine never meet on the default 29500.
    import subprocess
    import sys

    config = '{"image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "epochs": 1, "decay_epochs": 1, "num_workers": 0, "log_every": 1}'
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training.cyclegan",
         str(Path(domains.a[0]).parent), str(Path(domains.b[0]).parent), "--out", str(tmp_path / "ddp"),
         "--config", config],
        capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-3000:]  # where a rank stopped, and why
    # max(4, 6) images / (2 ranks x batch 1) = 3 steps an epoch, 2 epochs; only rank 0 logs and saves.
    assert sum(line.startswith("step ") for line in result.stdout.splitlines()) == 6 and "completed at step 6" in result.stdout
    assert checkpoint.read(tmp_path / "ddp" / "checkpoints" / "step_00000006.pt")["step"] == 6
