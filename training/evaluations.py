"""Evaluating runs: queue an evaluation of a checkpoint, compute it on the training worker, compare runs.

An evaluation computes any of three metrics (training/evaluation/ holds the maths):

* `fid_kid`: FID and KID of translated test images against the real test images of the target
  domain, both directions. Needs the Inception weights file (`WINNOW_INCEPTION_WEIGHTS`); asking
  for it without them is refused, and it is left out of the defaults.
* `known_mapping`: PSNR and SSIM of G_AB(a) against filter(a) (and G_BA(filter(a)) against a) on
  the held-out crops of a known-mapping data set, rebuilt from its parameters, beside the identity
  and colour-transfer baselines. Only for runs trained on such a data set, so only when asked.
* `classifier`: the downstream-classifier gain of the class-imbalance protocol, on the split's
  train images (minority topped up with the run's translations) and its balanced test images.

Results, per metric: the metric's dict, or {"skipped": reason} when the split cannot support it
(e.g. no test images). Non-finite floats (PSNR of identical images) are stored as "inf" strings,
since JSON has no infinity.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image

from labeling import splits as split_service
from labeling.models import Domain, Partition, Project
from winnow import jobs as background
from winnow.exceptions import InvalidInput

from .models import Evaluation, EvaluationStatus, Run
from .runs import local_path, training_queue
from .use import pick_checkpoint

log = logging.getLogger(__name__)

METRICS = ("fid_kid", "known_mapping", "classifier")
DEFAULT_MAX_IMAGES = 500
KNOWN_MAPPING_DEFAULTS = {"n_a": 200, "n_b": 200, "n_test": 50, "seed": 0, "filter": "cartoon", "max_scale": 2.0}
CLASSIFIER_DEFAULTS = {"seeds": [0, 1, 2], "epochs": 15, "size": 32, "imbalance": None}

Progress = Callable[[str, float], None]


def inception_weights() -> str:
    return getattr(settings, "WINNOW_INCEPTION_WEIGHTS", "") or os.environ.get("WINNOW_INCEPTION_WEIGHTS", "")


def resolve_config(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Fill in defaults; refuse metrics that cannot run here (FID without weights, unknown filters)."""
    from .evaluation.fid import INCEPTION_URL
    from .evaluation.known_mapping import FILTERS

    metrics = list(config.get("metrics") or [])
    if not metrics:
        metrics = (["fid_kid"] if inception_weights() else []) + ["classifier"]
        if config.get("known_mapping") is not None:
            metrics.append("known_mapping")
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise InvalidInput(f"unknown metrics {', '.join(unknown)}; choose from {', '.join(METRICS)}", code="invalid_metrics")
    if "fid_kid" in metrics and not inception_weights():
        raise InvalidInput(
            "FID and KID need the Inception weights, which Winnow never downloads: an administrator fetches "
            f"{INCEPTION_URL} once and sets WINNOW_INCEPTION_WEIGHTS to its path (docs/EVALUATION.md); or leave "
            "fid_kid out of metrics",
            code="inception_weights_missing",
        )
    resolved: dict[str, Any] = {"metrics": [m for m in METRICS if m in metrics],
                                "max_images": int(config.get("max_images") or DEFAULT_MAX_IMAGES)}
    if "known_mapping" in metrics:
        known = {"size": int(run.config.get("image_size", 256)), **KNOWN_MAPPING_DEFAULTS, **(config.get("known_mapping") or {})}
        if known["filter"] not in FILTERS:
            raise InvalidInput(f"unknown filter {known['filter']!r}; choose one of {', '.join(sorted(FILTERS))}",
                               code="invalid_filter")
        resolved["known_mapping"] = known
    if "classifier" in metrics:
        resolved["classifier"] = {**CLASSIFIER_DEFAULTS, **(config.get("classifier") or {})}
    return resolved


def start_evaluation(*, run: Run, config: dict[str, Any], requested_by: AbstractBaseUser,
                     checkpoint_id: int | None = None, enqueue: bool = True) -> Evaluation:
    """Queue an evaluation of one of the run's checkpoints (default: its newest) on the training queue.

    Refused: a run without a checkpoint (409), a rotated-out checkpoint (409), a metric that cannot
    run (400). Works on a running run too: it evaluates the checkpoint as it is now. With
    `enqueue=False` nothing is sent to a worker: the caller executes it (`manage.py evaluate`).
    """
    checkpoint = pick_checkpoint(run=run, checkpoint_id=checkpoint_id)
    resolved = resolve_config(config, run)
    with transaction.atomic():
        evaluation = Evaluation.objects.create(run=run, checkpoint=checkpoint, step=checkpoint.step, config=resolved,
                                               requested_by=requested_by)
        if enqueue:
            transaction.on_commit(lambda: enqueue_evaluation(evaluation.pk))
    return evaluation


def enqueue_evaluation(evaluation_id: int) -> None:
    from . import jobs

    jobs.evaluate.apply_async((evaluation_id,), queue=training_queue())


def execute_evaluation(*, evaluation_id: int, on_progress: Progress | None = None) -> Evaluation | None:
    """Compute a queued evaluation; claims it queued -> running, so a redelivered job does nothing.
    While it computes it beats; if its worker dies, the sweep of winnow/jobs.py re-queues it.

    Any error marks it failed (with the message) and is re-raised for the worker's log.
    """
    if not Evaluation.objects.claim(evaluation_id):
        log.info("evaluation %s is not queued; nothing to do", evaluation_id)
        return None
    evaluation = Evaluation.objects.select_related("run__split", "checkpoint").get(pk=evaluation_id)

    def progress(stage: str, fraction: float) -> None:
        Evaluation.objects.filter(pk=evaluation_id).update(progress=round(fraction, 4))
        if on_progress:
            on_progress(stage, fraction)

    results = background.run_claimed(background.JobBeat(Evaluation, evaluation_id),
                                     lambda: compute(evaluation, progress))
    Evaluation.objects.filter(pk=evaluation_id).update(
        status=EvaluationStatus.SUCCEEDED, finished_at=timezone.now(), results=json_safe(results), progress=1.0
    )
    evaluation.refresh_from_db()
    return evaluation


def recover_stale_evaluations() -> list[int]:
    """Re-queue running evaluations whose worker stopped beating; each starts over (its numbers are
    written only when complete). Registered with the sweep of winnow/jobs.py (see apps.py)."""
    return background.recover_stale(Evaluation, enqueue_evaluation)


# --- computing (on the training worker) ---------------------------------------------------------


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan"
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size` (bicubic), then the centre square: what the generators were trained on."""
    scale = size / min(image.size)
    image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                         Image.Resampling.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def split_images(run: Run, domain: str, partition: str, size: int, limit: int) -> list[Image.Image]:
    images = []
    for _, name in split_service.training_files(run.split, domain, partition)[:limit]:
        with default_storage.open(name, "rb") as handle, Image.open(handle) as image:
            images.append(square(image.convert("RGB"), size))
    return images


def compute(evaluation: Evaluation, progress: Progress) -> dict[str, Any]:
    import torch

    from .cyclegan.infer import load_generators, translate

    run, config = evaluation.run, evaluation.config
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = local_path(evaluation.checkpoint.file.name)
    generators = load_generators(path, device=device)

    def translator(direction: str) -> Callable[[Image.Image], Image.Image]:
        def apply(image: Image.Image) -> Image.Image:
            with torch.inference_mode():
                return translate(generators[direction], image)
        return apply

    size, limit = int(run.config.get("image_size", 256)), int(config.get("max_images", DEFAULT_MAX_IMAGES))
    metrics = config["metrics"]
    results: dict[str, Any] = {}
    for index, metric in enumerate(metrics):
        def stage(fraction: float, metric: str = metric, index: int = index) -> None:
            progress(metric, (index + fraction) / len(metrics))

        stage(0.0)
        if metric == "fid_kid":
            results[metric] = _fid_kid(run, translator, size, limit, device, stage)
        elif metric == "known_mapping":
            results[metric] = _known_mapping(config["known_mapping"], translator, stage)
        else:
            results[metric] = _classifier(run, config["classifier"], translator, size, limit, stage)
        stage(1.0)
    return results


def _fid_kid(run: Run, translator: Callable[[str], Callable[[Image.Image], Image.Image]], size: int, limit: int,
             device: str, stage: Callable[[float], None]) -> dict[str, Any]:
    from .evaluation.fid import fid_kid, load_inception

    extractor = load_inception(inception_weights(), device=device)
    tests = {d: split_images(run, d, Partition.TEST, size, limit) for d in (Domain.A, Domain.B)}
    out: dict[str, Any] = {}
    for done, direction in enumerate(("AB", "BA")):
        sources, targets = tests[direction[0]], tests[direction[1]]
        if len(sources) < 2 or len(targets) < 2:
            out[direction] = {"skipped": f"the split's test partition has {len(sources)} {direction[0]} and "
                                         f"{len(targets)} {direction[1]} images; FID and KID need at least 2 of each"}
            continue
        fakes = [translator(direction)(image) for image in sources]
        out[direction] = fid_kid(extractor, targets, fakes, device=device)
        stage((done + 1) / 2)
    return out


def _known_mapping(params: dict[str, Any], translator: Callable[[str], Callable[[Image.Image], Image.Image]],
                   stage: Callable[[float], None]) -> dict[str, Any]:
    from .evaluation.known_mapping import baselines, fidelity, make_known_mapping

    data = make_known_mapping(size=int(params["size"]), n_a=int(params["n_a"]), n_b=int(params["n_b"]),
                              n_test=int(params["n_test"]), seed=int(params["seed"]), image_filter=params["filter"],
                              max_scale=float(params["max_scale"]))
    stage(0.4)
    result = {"AB": fidelity(translator("AB"), data.test_a, data.test_b),
              "BA": fidelity(translator("BA"), data.test_b, data.test_a)}
    stage(0.7)
    result["baselines"] = baselines(data)
    return result


def _classifier(run: Run, params: dict[str, Any], translator: Callable[[str], Callable[[Image.Image], Image.Image]],
                size: int, limit: int, stage: Callable[[float], None]) -> dict[str, Any]:
    from .evaluation.classifier import ClassifierConfig, classifier_gain

    train = {d: split_images(run, d, Partition.TRAIN, size, limit) for d in (Domain.A, Domain.B)}
    test = {d: split_images(run, d, Partition.TEST, size, limit) for d in (Domain.A, Domain.B)}
    if not test[Domain.A] or not test[Domain.B]:
        return {"skipped": f"the split's test partition has {len(test[Domain.A])} A and {len(test[Domain.B])} B "
                           "images; the classifier needs a held-out image of each"}
    minority = Domain.A if len(train[Domain.A]) < len(train[Domain.B]) else Domain.B
    majority = Domain.B if minority == Domain.A else Domain.A
    imbalance = params.get("imbalance")
    if imbalance:
        # Emulate a harder imbalance: keep one minority image per `imbalance` majority images.
        keep = max(1, math.floor(len(train[majority]) / float(imbalance)))
        train[minority] = train[minority][:keep]
    needed = len(train[majority]) - len(train[minority])
    if needed < 1:
        return {"skipped": "the train partition is balanced; set classifier.imbalance (e.g. 10) to emulate an imbalance"}
    make = translator(majority + minority)
    synthetic = [make(image) for image in train[majority][:needed]]
    stage(0.3)
    cfg = ClassifierConfig(size=int(params["size"]), epochs=int(params["epochs"]))
    seeds = [int(seed) for seed in params["seeds"]]
    return classifier_gain(real_a=train[Domain.A], real_b=train[Domain.B], synthetic=synthetic,
                           test_a=test[Domain.A], test_b=test[Domain.B], minority=str(minority), seeds=seeds, cfg=cfg,
                           on_progress=lambda done, total: stage(0.3 + 0.7 * done / total))


# --- reading ----------------------------------------------------------------------------------


def _number(value: Any) -> float | str | None:
    return value if isinstance(value, int | float | str) else None


def headline(evaluation: Evaluation) -> dict[str, Any]:
    """The few numbers a comparison table shows, flat: fid_AB, kid_AB, psnr_AB, ssim_AB (and BA),
    their baselines' psnr, and the classifier's minority-recall and balanced-accuracy gains."""
    results = evaluation.results or {}
    row: dict[str, Any] = {}
    for direction in ("AB", "BA"):
        scores = results.get("fid_kid", {}).get(direction, {})
        row[f"fid_{direction}"], row[f"kid_{direction}"] = _number(scores.get("fid")), _number(scores.get("kid"))
        known = results.get("known_mapping", {})
        row[f"psnr_{direction}"] = _number(known.get(direction, {}).get("psnr"))
        row[f"ssim_{direction}"] = _number(known.get(direction, {}).get("ssim"))
        for baseline in ("identity", "colour_transfer"):
            row[f"psnr_{direction}_{baseline}"] = _number(known.get("baselines", {}).get(baseline, {}).get(direction, {}).get("psnr"))
    summary = results.get("classifier", {}).get("summary", {})
    for metric in ("minority_recall", "balanced_accuracy"):
        gain = summary.get(metric, {}).get("gain", {})
        row[f"{metric}_gain"] = _number(gain.get("mean"))
        row[f"{metric}_gain_low"], row[f"{metric}_gain_high"] = _number(gain.get("low")), _number(gain.get("high"))
    return row


def compare_runs(*, project: Project) -> list[dict[str, Any]]:
    """One row per run of the project: its newest succeeded evaluation's headline numbers (or none yet)."""
    rows = []
    runs = Run.objects.filter(project=project).order_by("-id").prefetch_related("evaluations")
    for run in runs:
        done = [e for e in run.evaluations.all() if e.status == EvaluationStatus.SUCCEEDED]
        latest = max(done, key=lambda e: (e.finished_at or e.created_at, e.pk), default=None)
        rows.append({
            "run": run.pk, "status": run.status, "split": run.split_id, "image_size": run.config.get("image_size"),
            "evaluation": latest.pk if latest else None, "step": latest.step if latest else None,
            "metrics": headline(latest) if latest else {},
        })
    return rows
