"""Winnow's CycleGAN beside the reference implementation, on known mappings, at equal steps.

For each mapping (the `colour_grade` film grade and the `cartoon` filter of
training/evaluation/known_mapping.py) and size, the same generated set (200 A photographs, 200 B
filtered photographs cut from other parts of the photographs, 50 held-out pairs, seed 0) trains:

* the reference implementation (Zhu et al.'s pytorch-CycleGAN-and-pix2pix), its own `train.py` run
  as a subprocess from a checkout outside this repository, on the same images written as its
  `trainA/ trainB/ testA/ testB/` dataroot, with the same resolution (`--load_size --crop_size`),
  widths (`--ngf --ndf`), blocks (`--netG resnet_6blocks`), batch 1 and step count (epochs sized to
  the steps); its saved `latest_net_G_A.pth` / `latest_net_G_B.pth` are loaded into Winnow's
  ResnetGenerator when the layouts match, else into the reference's own networks module;
* Winnow's trainer with the paper's recipe (`"recipe": "paper"`, the reference's model) and with
  the small-data recipe (`"recipe": "small-data"`);

then prints PSNR/SSIM against the true mapping (A->B: G(a) vs filter(a); B->A: F(filter(a)) vs a)
beside the identity map and colour transfer, with steps and wall time. One CPU thread per trainer.

Targets (exit 1 when one is missed): within 3,000 steps at 32x32 the small-data recipe beats the
identity on A->B PSNR by 3 dB on the colour grade and by 1 dB on the cartoon, and beats the reference
at equal steps on both; at 64x64 it beats the identity on both within 10 minutes. `--classifier`
also runs the downstream check (a classifier trained with synthetic minority images) for both
Winnow recipes and prints each gain with its 95% interval over the classifier seeds.

    .venv/bin/python benchmarks/vs_reference.py [--reference DIR] [--sizes 32,64] [--steps 3000]
        [--mappings colour_grade,cartoon] [--classifier] [--config '{"lambda_identity": 0.1}']

The reference checkout comes from `--reference DIR`, else `WINNOW_REFERENCE_DIR`, else `.reference/`
in the repository (ignored by git); never copy its code into this repository. Without one the script
says so, trains Winnow's side only and still checks Winnow's targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from training.cyclegan.config import CycleGANConfig  # noqa: E402
from training.cyclegan.data import Domains  # noqa: E402
from training.cyclegan.infer import load_generators, translate  # noqa: E402
from training.cyclegan.model import ResnetGenerator  # noqa: E402
from training.cyclegan.train import train  # noqa: E402
from training.evaluation.known_mapping import (  # noqa: E402
    ColourTransfer,
    KnownMappingSet,
    fidelity,
    identity,
    make_known_mapping,
)

MODEL = {"ngf": 16, "ndf": 16, "n_blocks": 6}  # the widths and blocks both sides train
MINUTES_64 = 10.0
TARGET_DB = {"colour_grade": 3.0, "cartoon": 1.0}  # small-data over the identity at 32x32, A->B PSNR


@dataclass
class Row:
    name: str
    ab: dict[str, float]
    ba: dict[str, float]
    steps: int | None = None
    seconds: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        steps = "—" if self.steps is None else f"{self.steps:,}"
        seconds = "—" if self.seconds is None else f"{self.seconds:.0f} s"
        return (f"| {self.name} | {steps} | {self.ab['psnr']:.2f} | {self.ab['ssim']:.3f} | {self.ba['psnr']:.2f} "
                f"| {self.ba['ssim']:.3f} | {seconds} |")


# --- Winnow's side ----------------------------------------------------------------------------------


def schedule(steps: int, per_epoch: int) -> tuple[int, int]:
    """(constant epochs, decay epochs) covering `steps` iterations, as the reference counts them."""
    total = max(1, math.ceil(steps / per_epoch))
    return math.ceil(total / 2), total - math.ceil(total / 2)


def winnow_config(size: int, steps: int, per_epoch: int, recipe: str, overrides: dict[str, Any],
                  seed: int = 0, time_limit_s: float | None = None) -> CycleGANConfig:
    epochs, decay = schedule(steps, per_epoch)
    settings: dict[str, Any] = {
        "image_size": size, **MODEL, "batch_size": 1, "epochs": epochs, "decay_epochs": decay, "recipe": recipe,
        "seed": seed, "device": "cpu", "precision": "fp32", "num_workers": 0, "log_every": 500,
        "sample_every": 10**6, "checkpoint_every": 10**6, "keep_checkpoints": 1, "time_limit_s": time_limit_s,
    }
    return CycleGANConfig(**{**settings, **overrides})


def train_winnow(cfg: CycleGANConfig, folders: tuple[Path, Path], out: Path, steps: int
                 ) -> tuple[torch.nn.Module, torch.nn.Module, int, float, dict[str, float]]:
    """Train to `steps` (or the config's time limit); returns both generators, steps done, seconds, last losses."""
    data = Domains(sorted(folders[0].glob("*.png")), sorted(folders[1].glob("*.png")))
    done = {"step": 0}

    def should_stop() -> bool:
        return done["step"] >= steps

    def on_log(metrics: dict[str, Any]) -> None:
        done["step"] = metrics["step"]

    cfg.log_every = 1  # the stop check counts steps through the log
    started = time.monotonic()
    result = train(cfg, data, out, on_log, should_stop)
    seconds = time.monotonic() - started
    assert result.checkpoint is not None
    generators = load_generators(result.checkpoint)
    return generators["AB"], generators["BA"], result.step, seconds, result.losses


def scored(name: str, g_ab: torch.nn.Module, g_ba: torch.nn.Module, data: KnownMappingSet, **extra: Any) -> Row:
    return Row(name, fidelity(lambda image: translate(g_ab, image), data.test_a, data.test_b),
               fidelity(lambda image: translate(g_ba, image), data.test_b, data.test_a), **extra)


# --- the reference's side ---------------------------------------------------------------------------


def find_reference(given: str | None) -> Path | None:
    for candidate in (given, os.environ.get("WINNOW_REFERENCE_DIR"), str(REPO / ".reference")):
        if candidate and (Path(candidate) / "train.py").is_file() and (Path(candidate) / "models").is_dir():
            return Path(candidate).resolve()
        if given and candidate == given:
            raise SystemExit(f"--reference {given}: no train.py and models/ there (a checkout of the reference)")
    return None


def write_dataroot(data: KnownMappingSet, root: Path) -> Path:
    """The set as the reference reads it: trainA/ trainB/ testA/ testB/."""
    for folder, images in (("trainA", data.a), ("trainB", data.b), ("testA", data.test_a), ("testB", data.test_b)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            image.save(root / folder / f"{index:05d}.png")
    return root


def stub_modules(reference: Path, into: Path) -> list[str]:
    """Empty stand-ins for the reference's logging and HTML dependencies (wandb, dominate) when they
    are not installed: with wandb off and --no_html it imports them but never calls them."""
    stubbed = []
    for module in ("wandb", "dominate"):
        found = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0
        if found:
            continue
        package = into / module
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(
            "run = None\n\ndef __getattr__(name):\n    raise RuntimeError('a stand-in: the benchmark runs the "
            "reference without it')\n")
        if module == "dominate":
            names = "meta, h3, table, tr, td, p, a, img, br".split(", ")
            (package / "tags.py").write_text("".join(f"def {n}(*args, **kwargs):\n    raise RuntimeError('a stand-in')\n\n"
                                                     for n in names))
        stubbed.append(module)
    return stubbed


def reference_command(reference: Path, dataroot: Path, checkpoints: Path, size: int, steps: int, per_epoch: int,
                      seed: int = 0) -> list[str]:
    epochs, decay = schedule(steps, per_epoch)
    options = "".join((reference / "options" / name).read_text() for name in ("base_options.py", "train_options.py"))
    load_size = round(size * 286 / 256)
    command = [
        sys.executable, "train.py", "--dataroot", str(dataroot), "--name", "bench", "--checkpoints_dir", str(checkpoints),
        "--model", "cycle_gan", "--ngf", str(MODEL["ngf"]), "--ndf", str(MODEL["ndf"]),
        "--netG", f"resnet_{MODEL['n_blocks']}blocks", "--batch_size", "1", "--load_size", str(load_size),
        "--crop_size", str(size), "--n_epochs", str(epochs), "--n_epochs_decay", str(decay), "--num_threads", "0",
        "--no_html", "--display_freq", str(10**9), "--print_freq", str(per_epoch * 5),
        "--save_latest_freq", str(10**9), "--save_epoch_freq", str(epochs + decay),
    ]
    # Older checkouts choose the device and the visdom display by flag; newer ones dropped both flags.
    if "--display_id" in options:
        command += ["--display_id", "0"]
    if "--gpu_ids" in options:
        command += ["--gpu_ids", "-1"]
    if "--seed" in options:
        command += ["--seed", str(seed)]
    return command


def load_reference_generator(reference: Path, path: Path, direction_ok: bool = True) -> torch.nn.Module:
    """The reference's saved generator: in Winnow's ResnetGenerator when the state dict's layout is the
    same (its blocks' `conv_block` is Winnow's `block`), else in the reference's own networks module."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = {key.replace(".conv_block.", ".block."): value for key, value in state.items()}
    net = ResnetGenerator(3, 3, MODEL["ngf"], MODEL["n_blocks"])
    try:
        net.load_state_dict(renamed)
        return net.eval()
    except RuntimeError:
        sys.path.insert(0, str(reference))
        from models import networks  # the reference's module, from its checkout

        ref = networks.define_G(3, 3, MODEL["ngf"], f"resnet_{MODEL['n_blocks']}blocks", norm="instance")
        ref.load_state_dict(state)
        return ref.cpu().eval()


@dataclass
class ReferenceRun:
    process: subprocess.Popen[bytes]
    log: Path
    checkpoints: Path
    started: float
    steps: int


def start_reference(reference: Path, data: KnownMappingSet, work: Path, size: int, steps: int) -> ReferenceRun:
    root = write_dataroot(data, work / "dataroot")
    stubs = work / "stubs"
    stubbed = stub_modules(reference, stubs)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(stubs), str(reference)])}
    env.pop("WORLD_SIZE", None)
    if stubbed:
        print(f"  (the reference runs with stand-ins for {', '.join(stubbed)}, not installed here)", flush=True)
    per_epoch = max(len(data.a), len(data.b))
    command = reference_command(reference, root, work / "checkpoints", size, steps, per_epoch)
    log = work / "reference.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=reference, env=env, stdout=out, stderr=subprocess.STDOUT)
    epochs, decay = schedule(steps, per_epoch)
    return ReferenceRun(process, log, work / "checkpoints" / "bench", time.monotonic(), (epochs + decay) * per_epoch)


def finish_reference(run: ReferenceRun, reference: Path, data: KnownMappingSet) -> Row | None:
    code = run.process.wait()
    seconds = time.monotonic() - run.started
    if code != 0:
        tail = run.log.read_text(errors="replace")[-3000:]
        print(f"  the reference's train.py failed (exit {code}):\n{tail}", flush=True)
        return None
    g_ab = load_reference_generator(reference, run.checkpoints / "latest_net_G_A.pth")
    g_ba = load_reference_generator(reference, run.checkpoints / "latest_net_G_B.pth")
    return scored("reference implementation (paper's model)", g_ab, g_ba, data, steps=run.steps, seconds=seconds)


# --- the downstream check ---------------------------------------------------------------------------


def downstream(data: KnownMappingSet, g_ab: torch.nn.Module, imbalance: int, seeds: Sequence[int]) -> dict[str, Any]:
    """The class-imbalance protocol: B kept at one image in `imbalance`, the rest replaced by G_ab of A images."""
    from training.evaluation.classifier import ClassifierConfig, classifier_gain

    real_b = data.b[:: imbalance]
    synthetic = [translate(g_ab, image) for image in data.a[: len(data.a) - len(real_b)]]
    return classifier_gain(real_a=data.a, real_b=real_b, synthetic=synthetic, test_a=data.test_a, test_b=data.test_b,
                           minority="B", seeds=seeds, cfg=ClassifierConfig(size=data.size))


def interval_text(summary: dict[str, Any]) -> str:
    gain = summary["gain"]
    low = "—" if gain["low"] is None else f"{gain['low']:+.3f}"
    high = "—" if gain["high"] is None else f"{gain['high']:+.3f}"
    return (f"{summary['baseline']['mean']:.3f} -> {summary['augmented']['mean']:.3f}, "
            f"gain {gain['mean']:+.3f} [{low}, {high}]")


# --- the benchmark ----------------------------------------------------------------------------------


def run_case(mapping: str, size: int, steps: int, reference: Path | None, overrides: dict[str, Any],
             recipes: Sequence[str], work: Path, time_limit_s: float | None, classifier: Sequence[int] | None,
             imbalance: int) -> tuple[dict[str, Row], dict[str, Any]]:
    data = make_known_mapping(size=size, image_filter=mapping)
    case = work / f"{mapping}-{size}"
    folders = (case / "A", case / "B")
    data.write(case)  # A/, B/, test/
    rows = {
        "identity": Row("identity map", fidelity(identity, data.test_a, data.test_b),
                        fidelity(identity, data.test_b, data.test_a)),
        "colour_transfer": Row("colour transfer (Reinhard, Lab)",
                               fidelity(ColourTransfer(data.a, data.b), data.test_a, data.test_b),
                               fidelity(ColourTransfer(data.b, data.a), data.test_b, data.test_a)),
    }
    ref_run = start_reference(reference, data, case / "reference", size, steps) if reference else None
    per_epoch = max(len(data.a), len(data.b))
    downstream_results: dict[str, Any] = {}
    for recipe in recipes:
        cfg = winnow_config(size, steps, per_epoch, recipe, overrides if recipe == "small-data" else {},
                            time_limit_s=time_limit_s)
        g_ab, g_ba, done, seconds, losses = train_winnow(cfg, folders, case / f"winnow-{recipe}", steps)
        rows[recipe] = scored(f"Winnow, recipe {recipe}", g_ab, g_ba, data, steps=done, seconds=seconds,
                              notes={"config": {k: v for k, v in cfg.to_dict().items() if k in RECIPE_KEYS},
                                     "losses": losses})
        print(f"  {rows[recipe].line()}", flush=True)
        if classifier:
            downstream_results[recipe] = downstream(data, g_ab, imbalance, classifier)
    if ref_run is not None:
        row = finish_reference(ref_run, reference, data)  # type: ignore[arg-type]
        if row is not None:
            rows["reference"] = row
    return rows, downstream_results


RECIPE_KEYS = ("recipe", "residual", "colour_head", "lambda_identity", "diffaug", "spectral_norm", "r1_gamma",
               "lr_d_ratio", "pixel_d", "n_layers_d", "lr", "lambda_cycle", "cycle_blur", "upsample", "ema_decay",
               "colour_features", "self_ensemble")


def check_targets(results: dict[tuple[str, int], dict[str, Row]], steps: int) -> list[str]:
    """The issue's targets, as (met / missed) lines; a missed one starts with "MISSED"."""
    lines = []
    for (mapping, size), rows in sorted(results.items()):
        if "small-data" not in rows:
            continue
        ours, base = rows["small-data"].ab["psnr"], rows["identity"].ab["psnr"]
        if size == 32:
            need = TARGET_DB.get(mapping, 1.0)
            lines.append(f"{'met' if ours >= base + need else 'MISSED'}: {mapping} 32x32, small-data {ours:.2f} dB "
                         f">= identity {base:.2f} + {need:g} dB within {steps:,} steps")
            if "reference" in rows:
                theirs = rows["reference"].ab["psnr"]
                lines.append(f"{'met' if ours > theirs else 'MISSED'}: {mapping} 32x32, small-data {ours:.2f} dB "
                             f"> reference {theirs:.2f} dB at {steps:,} steps")
            else:
                lines.append(f"not measured: {mapping} 32x32 against the reference (no checkout given)")
        else:
            lines.append(f"{'met' if ours > base else 'MISSED'}: {mapping} {size}x{size}, small-data {ours:.2f} dB "
                         f"> identity {base:.2f} dB within {MINUTES_64:g} minutes")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="a checkout of the reference implementation (or WINNOW_REFERENCE_DIR)")
    parser.add_argument("--mappings", default="colour_grade,cartoon")
    parser.add_argument("--sizes", default="32,64")
    parser.add_argument("--steps", type=int, default=3000, help="iterations of every trainer (batch 1)")
    parser.add_argument("--minutes-64", type=float, default=MINUTES_64, help="time limit of Winnow's runs above 32x32")
    parser.add_argument("--recipes", default="paper,small-data")
    parser.add_argument("--config", default="{}", help="JSON overrides of the small-data recipe's run (trials)")
    parser.add_argument("--classifier", default="", help="classifier seeds for the downstream check, e.g. 0,1,2,3,4")
    parser.add_argument("--imbalance", type=int, default=10)
    parser.add_argument("--no-reference", action="store_true", help="train Winnow's side only")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    reference = None if args.no_reference else find_reference(args.reference)
    if reference is None:
        print("No reference checkout (--reference DIR, WINNOW_REFERENCE_DIR or .reference/): Winnow's side only; "
              "the comparisons with the reference are not measured.", flush=True)
    else:
        print(f"Reference implementation: {reference.name}/ (its train.py, one thread)", flush=True)
    overrides = json.loads(args.config)
    seeds = [int(s) for s in args.classifier.split(",") if s]
    results: dict[tuple[str, int], dict[str, Row]] = {}
    classifier: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="winnow-vs-reference-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            for mapping in args.mappings.split(","):
                print(f"\n## {mapping}, {size}x{size}, {args.steps:,} steps", flush=True)
                limit = None if size == 32 else args.minutes_64 * 60
                # The reference has no time limit; above 32x32 the target is Winnow's alone.
                rows, gains = run_case(mapping, size, args.steps, reference if size == 32 else None, overrides,
                                       args.recipes.split(","), Path(tmp), limit, seeds if size == 32 else None,
                                       args.imbalance)
                results[(mapping, size)] = rows
                print("\n| on the 50 held-out pairs | steps | PSNR A→B | SSIM A→B | PSNR B→A | SSIM B→A | time |")
                print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
                for row in rows.values():
                    print(row.line())
                for recipe, gain in gains.items():
                    summary = gain["summary"]
                    print(f"downstream, recipe {recipe} ({len(seeds)} seeds, B kept 1 in {args.imbalance}): minority "
                          f"recall {interval_text(summary['minority_recall'])}; balanced accuracy "
                          f"{interval_text(summary['balanced_accuracy'])}")
                    classifier[f"{mapping}-{size}-{recipe}"] = gain
    lines = check_targets(results, args.steps)
    print("\n" + "\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "results": {f"{m}-{s}": {k: vars(r) for k, r in rows.items()} for (m, s), rows in results.items()},
            "classifier": classifier, "targets": lines}, indent=1, default=str))
    return 1 if any(line.startswith("MISSED") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
