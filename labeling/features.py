"""Image features: an embedding per image of a project, from features learned on the project's own pile.

The embedding job (a `FeatureJob`, a `BackgroundJob`) runs after ingest. The first time, and when an
owner asks for a new model, it trains a feature model; otherwise it embeds the images that have no
embedding yet with the current one. The model is either

* a small CNN trained from scratch on the project's images to predict their rotation (self-supervised,
  no labels needed) and, where the project has accepted answers, their choice too (labeling/featurenet.py);
  gold tasks are kept out of that training so the suggestion model's accuracy on gold stays a held-out
  figure; or
* a torchvision ResNet whose weights file `WINNOW_FEATURE_WEIGHTS` names (never downloaded), its
  features reduced to EMBEDDING_DIM by a PCA fitted on the project's images.

Vectors are unit length, stored by `vectors.py` (pgvector where the server has it). After embedding, the
job records near-duplicates by embedding distance and refits the suggestion model. Torch is imported
inside the functions that need it, with its threads bounded (WINNOW_FEATURE_THREADS).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from PIL import Image, ImageOps

from winnow import jobs as background
from winnow import storage
from winnow.exceptions import InvalidInput

from . import duplicates, vectors
from .models import AssistJobStatus, BatchKind, Choice, Embedding, FeatureJob, Project, Task, TaskStatus
from .vectors import EMBEDDING_DIM

log = logging.getLogger(__name__)

CHUNK = 256  # images decoded and embedded at a time (progress is written per chunk)
MIN_LABELS_TO_REFINE = 20  # accepted answers before the CNN learns the choices as well
BACKBONE_SIZE = 128  # input pixels of a pretrained backbone on the CPU
BATCH = 64
MAX_EPOCHS = 8


def embedding_matrix(project_id: int, asset_ids: Sequence[int] | None = None) -> tuple[list[int], np.ndarray]:
    """The project's stored embeddings: (asset ids in id order, float32 [n, EMBEDDING_DIM] unit rows).

    `asset_ids` limits it to those images (ones without an embedding are left out)."""
    return vectors.read(project_id=project_id, asset_ids=asset_ids)


# --- queueing ---------------------------------------------------------------------------------


def schedule(*, project_id: int, retrain: bool = False, countdown: float | None = None) -> FeatureJob:
    """Queue the embedding job for a project, unless one is queued already (then that one is returned,
    asked to retrain if `retrain`): uploads in a burst cost one run. The job starts after the
    debounce (WINNOW_ASSIST_DEBOUNCE_SECONDS), once the caller's transaction commits."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project_id).values_list("id").first()
        queued = FeatureJob.objects.filter(project_id=project_id, status=AssistJobStatus.QUEUED).first()
        if queued is not None:
            if retrain and not queued.retrain:
                FeatureJob.objects.filter(pk=queued.pk).update(retrain=True)
                queued.retrain = True
            return queued
        job = FeatureJob.objects.create(project_id=project_id, retrain=retrain)
        wait = settings.WINNOW_ASSIST_DEBOUNCE_SECONDS if countdown is None else countdown
        transaction.on_commit(lambda: _enqueue(job.pk, wait))
    return job


def schedule_after_ingest(project_id: int) -> None:
    """New images arrived: embed them (when model assistance is on, WINNOW_ASSIST)."""
    if settings.WINNOW_ASSIST:
        schedule(project_id=project_id)


def _enqueue(job_id: int, countdown: float = 0) -> None:
    from . import jobs

    jobs.compute_embeddings.apply_async((job_id,), countdown=countdown)


def requeue_stalled() -> list[int]:
    """Queue again the embedding jobs whose worker stopped beating; every worker's sweep runs this."""
    return background.recover_stale(FeatureJob, _enqueue)


# --- the job ----------------------------------------------------------------------------------


def run_feature_job(*, job_id: int) -> int | None:
    """Train or load the project's feature model and embed every image without an embedding of it; returns
    the project's id once done (the job then refits its suggestions), None when another worker has the job.

    A background job: claimed by a conditional update (a redelivered message does nothing while its worker
    lives), beating while it works, failed with the reason (a bad weights file, no images) when it raises.
    """
    if not FeatureJob.objects.claim(job_id, assets_done=0):
        return None
    job = FeatureJob.objects.select_related("project").get(pk=job_id)
    background.run_claimed(background.JobBeat(FeatureJob, job_id), lambda: _run(job))
    return job.project_id


def _run(job: FeatureJob) -> None:
    torch = _torch()
    project_id = job.project_id
    assets = project_images(project_id)
    if not assets:
        raise InvalidInput("the project has no images yet; upload a batch, then compute embeddings")
    current = current_model(project_id)
    wanted = wanted_kind()
    started = time.monotonic()
    # A new model when asked, when there is none (or of another kind), and when the pile has doubled since the
    # model was trained: features learned on the first images of a project would miss what came after.
    if (job.retrain or current is None or current.kind != wanted or not _weights_path(current).is_file()
            or len(assets) >= 2 * max(1, current.assets_total)):
        model, extra, version, labels_used = _train(job, assets, wanted)
        FeatureJob.objects.filter(pk=job.pk).update(
            version=version, kind=wanted, trained=True, labels_used=labels_used, weights=extra["weights"],
            train_seconds=time.monotonic() - started)
        todo = list(assets)
    else:
        model, extra = _load(current)
        version = current.version
        have = set(Embedding.objects.filter(project_id=project_id, version=version).values_list("asset_id", flat=True))
        todo = [a for a in assets if a[0] not in have]
        FeatureJob.objects.filter(pk=job.pk).update(version=version, kind=current.kind, weights=current.weights)
    FeatureJob.objects.filter(pk=job.pk).update(assets_total=len(todo))
    embedding_started = time.monotonic()
    done: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            matrix = _features(model, extra, load_images([name for _, name in chunk], extra["size"]))
            ids = [asset_id for asset_id, _ in chunk]
            vectors.write(project_id=project_id, version=version, asset_ids=ids, matrix=matrix)
            done.extend(ids)
            FeatureJob.objects.filter(pk=job.pk).update(assets_done=len(done))
    ids, matrix = embedding_matrix(project_id)
    duplicates.find_by_embedding(project_id=project_id, asset_ids=ids, matrix=matrix, new=done)
    FeatureJob.objects.filter(pk=job.pk).update(
        status=AssistJobStatus.DONE, finished_at=timezone.now(), embed_seconds=time.monotonic() - embedding_started)
    cache.set(f"winnow:embedded:{project_id}", True, 60)  # answers may ask for refits now (suggestions.note_answer)


def _torch() -> Any:
    import torch

    torch.set_num_threads(settings.WINNOW_FEATURE_THREADS)
    return torch


def wanted_kind() -> str:
    """rotation-cnn, or backbone when WINNOW_FEATURE_WEIGHTS names a weights file."""
    return "backbone" if settings.WINNOW_FEATURE_WEIGHTS else "rotation-cnn"


def project_images(project_id: int) -> list[tuple[int, str]]:
    """(asset id, thumbnail storage name) of every image of the project's live tasks, in asset order."""
    rows = (Task.objects.alive().filter(project_id=project_id, asset__isnull=False)
            .exclude(status__in=[TaskStatus.FAILED, TaskStatus.CANCELLED])
            .values_list("asset_id", "asset__thumbnail").distinct().order_by("asset_id"))
    return list(rows)


def current_model(project_id: int) -> FeatureJob | None:
    """The job that trained the project's feature model now in use (the latest that succeeded)."""
    return (FeatureJob.objects.filter(project_id=project_id, trained=True, status=AssistJobStatus.DONE)
            .order_by("-version").first())


def load_images(names: Sequence[str], size: int) -> np.ndarray:
    """Thumbnails as uint8 (N, size, size, 3), centre-cropped to a square."""
    out = np.zeros((len(names), size, size, 3), dtype=np.uint8)
    # Through the media storage: on object storage the worker fetches each (content-addressed) thumbnail once.
    for i, path in enumerate(storage.local_copies(names, immutable=True)):
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size * 2, size * 2))
            out[i] = np.asarray(ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR))
    return out


def choice_order(project_id: int) -> list[int]:
    """The project's choice ids in taxonomy order: the class order of features and suggestions."""
    return list(Choice.objects.filter(project_id=project_id).order_by("order", "id").values_list("id", flat=True))


def accepted_answers(project_id: int) -> dict[int, int]:
    """{asset id: choice id} of the answered tasks of production batches that are not gold: what annotators
    decided (single, consensus or audit-corrected). Calibration answers count only once the owner made them
    gold."""
    return dict(Task.objects.alive().filter(
        project_id=project_id, status=TaskStatus.COMPLETED, is_gold=False, final_choice__isnull=False,
        asset__isnull=False, batch__kind=BatchKind.PRODUCTION).values_list("asset_id", "final_choice_id"))


def accepted_labels(project_id: int, asset_ids: Sequence[int], choice_ids: Sequence[int]) -> np.ndarray:
    """Per asset, the index in `choice_ids` of its accepted answer (`suggestions.accepted_answers`), or -1.
    Gold is left out so the suggestion model's gold accuracy stays held out."""
    index = {c: i for i, c in enumerate(choice_ids)}
    answer = accepted_answers(project_id)
    return np.array([index.get(answer.get(a, -1), -1) for a in asset_ids], dtype=np.int64)


def _weights_path(job: FeatureJob) -> Path:
    return storage.local_copy(job.weights, immutable=True)  # the name carries a random token: never rewritten


def _train(job: FeatureJob, assets: list[tuple[int, str]], kind: str) -> tuple[Any, dict[str, Any], int, int]:
    from . import featurenet

    project_id = job.project_id
    version = (FeatureJob.objects.filter(project_id=project_id, trained=True).aggregate(v=Max("version"))["v"] or 0) + 1
    name = f"features/{project_id}/v{version}-{secrets.token_hex(6)}.pt"
    ids = [a for a, _ in assets]
    if kind == "backbone":
        backbone = featurenet.load_backbone(Path(settings.WINNOW_FEATURE_WEIGHTS))
        raw = np.concatenate([featurenet.embed(backbone, load_images([n for _, n in assets[s : s + CHUNK]], BACKBONE_SIZE))
                              for s in range(0, len(assets), CHUNK)])
        mean, components = _pca(raw)
        extra = {"kind": kind, "size": BACKBONE_SIZE, "mean": mean, "components": components, "weights": name}
        torch = _torch()
        torch.save({"mean": torch.from_numpy(mean), "components": torch.from_numpy(components), "size": BACKBONE_SIZE},
                   storage.work_path(name))
        storage.publish(name)
        return backbone, extra, version, 0
    choices = choice_order(project_id)
    labels = accepted_labels(project_id, ids, choices)
    if (labels >= 0).sum() < MIN_LABELS_TO_REFINE:
        labels = np.full(len(ids), -1, dtype=np.int64)
    size = settings.WINNOW_FEATURE_SIZE
    images = load_images([n for _, n in assets], size)
    # At most MAX_EPOCHS passes over the pile: a small pile trained longer learns its images' rotations by heart
    # and its features lose what tells the kinds apart (seen on the planted pile of benchmarks/assisted.py).
    steps = min(settings.WINNOW_FEATURE_STEPS, max(1, math.ceil(MAX_EPOCHS * len(images) / BATCH)))
    last = [time.monotonic()]

    def progress(step: int) -> None:
        if time.monotonic() - last[0] > 5:  # the job's page shows training as it goes
            last[0] = time.monotonic()
            FeatureJob.objects.filter(pk=job.pk).update(assets_done=0, assets_total=0, labels_used=int((labels >= 0).sum()))

    model = featurenet.train_cnn(images, labels, classes=len(choices), dim=EMBEDDING_DIM, steps=steps, batch=BATCH,
                                 seed=project_id, on_step=progress)
    extra = {"kind": kind, "size": size, "dim": EMBEDDING_DIM, "classes": len(choices) if (labels >= 0).any() else 0,
             "weights": name}
    featurenet.save(storage.work_path(name), model, {k: v for k, v in extra.items() if k != "weights"})
    storage.publish(name)
    return model, extra, version, int((labels >= 0).sum())


def _load(job: FeatureJob) -> tuple[Any, dict[str, Any]]:
    from . import featurenet

    path = _weights_path(job)
    if job.kind == "backbone":
        saved = _torch().load(path, map_location="cpu", weights_only=True)
        backbone = featurenet.load_backbone(Path(settings.WINNOW_FEATURE_WEIGHTS))
        return backbone, {"kind": "backbone", "size": saved["size"], "mean": saved["mean"].numpy(),
                          "components": saved["components"].numpy()}
    model, saved = featurenet.load_cnn(path)
    return model, {"kind": "rotation-cnn", **saved}


def _features(model: Any, extra: dict[str, Any], images: np.ndarray) -> np.ndarray:
    from . import featurenet

    if extra["kind"] == "backbone":
        raw = featurenet.embed(model, images)
        reduced = (raw - extra["mean"]) @ extra["components"].T
    else:
        reduced = featurenet.embed(model.features, images)
    return _unit(reduced)


def _pca(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top EMBEDDING_DIM principal axes of backbone features (zero rows pad a small pile)."""
    mean = raw.mean(axis=0)
    _, _, axes = np.linalg.svd(raw - mean, full_matrices=False)
    components = np.zeros((EMBEDDING_DIM, raw.shape[1]), dtype=np.float32)
    components[: min(EMBEDDING_DIM, len(axes))] = axes[:EMBEDDING_DIM]
    return mean.astype(np.float32), components


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-8)).astype(np.float32)


# --- what the pages and the API show ------------------------------------------------------------


def status(project: Project) -> dict[str, Any]:
    """The embedding job's state for the batches page: the latest job with its counts, and how many of the
    project's images have an embedding of the model in use."""
    latest = FeatureJob.objects.filter(project=project).order_by("-id").first()
    current = current_model(project.pk)
    images = len(project_images(project.pk))
    embedded = (Embedding.objects.filter(project_id=project.pk, version=current.version).count()
                if current is not None else 0)
    return {
        "enabled": settings.WINNOW_ASSIST,
        "kind": current.kind if current else wanted_kind(),
        "version": current.version if current else None,
        "images": images,
        "embedded": embedded,
        "vector_index": vectors.column_is_vector(),
        "job": None if latest is None else {
            "id": latest.pk, "status": latest.status, "retrain": latest.retrain, "trained": latest.trained,
            "assets_done": latest.assets_done, "assets_total": latest.assets_total, "progress": latest.progress,
            "labels_used": latest.labels_used, "error": latest.error, "created_at": latest.created_at,
            "finished_at": latest.finished_at, "train_seconds": latest.train_seconds,
            "embed_seconds": latest.embed_seconds,
        },
    }
