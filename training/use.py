"""Using a trained run: pick a checkpoint, download its generators, translate an image, augment a data set.

Translating runs in the web process on its CPU (the upload is scaled down first when it is large);
an augmentation is a background job (winnow/jobs.py) on the training queue that writes a zip of
synthetic minority-domain images with a manifest saying where each came from.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from functools import lru_cache
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from labeling.models import Domain, Partition
from winnow import jobs as background
from winnow import storage
from winnow.exceptions import Conflict, InvalidInput

from .models import Augmentation, AugmentationStatus, Checkpoint, Run
from .runs import latest_checkpoint, local_path, train_counts, training_queue

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

DIRECTIONS = ("AB", "BA")


def pick_checkpoint(*, run: Run, checkpoint_id: int | None) -> Checkpoint:
    """The requested checkpoint of the run, or its newest; refused when none has its file any more."""
    if checkpoint_id is None:
        checkpoint = latest_checkpoint(run)
        if checkpoint is None:
            raise Conflict(f"run {run.pk} has no checkpoint yet; wait for its first one", code="no_checkpoint")
        return checkpoint
    checkpoint = run.checkpoints.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        raise InvalidInput(f"checkpoint {checkpoint_id} does not belong to run {run.pk}", code="invalid_checkpoint")
    if checkpoint.deleted_at is not None or not storage.exists(checkpoint.file.name):
        raise Conflict(f"checkpoint at step {checkpoint.step} was rotated out; choose a newer one",
                       code="checkpoint_gone")
    return checkpoint


@lru_cache(maxsize=4)
def _generator(path: str, direction: str, mtime: float, device: str) -> nn.Module:
    from .cyclegan.infer import load_generator

    return load_generator(path, direction, device=device)


def generator_for(checkpoint: Checkpoint, direction: str, device: str = "cpu") -> nn.Module:
    """The checkpoint's generator for `direction`, loaded once per file version and device (from a local
    copy of the checkpoint when the media storage is a bucket)."""
    path = local_path(checkpoint.file.name)
    return _generator(str(path), direction, path.stat().st_mtime, device)


def export_weights(*, checkpoint: Checkpoint) -> str:
    """Storage name of the checkpoint's generators-only file (config + G_ab + G_ba), made once on demand."""
    from .cyclegan.infer import export_generators

    name = f"{checkpoint.run.storage_prefix}/exports/step_{checkpoint.step:08d}-generators.pt"
    if not storage.exists(name):
        export_generators(local_path(checkpoint.file.name), storage.work_path(name))
        storage.publish(name)
    return name


def open_image(file: IO[bytes]) -> Image.Image:
    """Decode an uploaded image, refusing non-images and decompression bombs with a clear error."""
    try:
        with Image.open(file) as image:
            if image.width * image.height > settings.INGEST_MAX_PIXELS:
                raise InvalidInput(
                    f"the image has {image.width * image.height} pixels; the limit is {settings.INGEST_MAX_PIXELS}"
                )
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidInput("the upload is not an image Pillow can read (JPEG, PNG, WebP, …)") from exc


def translate_image(*, run: Run, file: IO[bytes], direction: str, checkpoint_id: int | None = None
                    ) -> tuple[bytes, Checkpoint, bool]:
    """Translate an uploaded image A->B or B->A with one of the run's checkpoints; returns PNG bytes.

    The output has the input's size, except that images wider or taller than
    `WINNOW_TRANSLATE_MAX_SIDE` are first scaled down to it (the third value says so), which bounds
    the time a request takes on the web server's CPU.
    """
    from .cyclegan.infer import MIN_TRANSLATE_SIDE, translate

    if direction not in DIRECTIONS:
        raise InvalidInput('direction must be "AB" (A to B) or "BA" (B to A)')
    checkpoint = pick_checkpoint(run=run, checkpoint_id=checkpoint_id)
    image = open_image(file)
    if min(image.size) < MIN_TRANSLATE_SIDE:
        raise InvalidInput(f"the image must be at least {MIN_TRANSLATE_SIDE} px on each side, got {image.width}x{image.height}")
    max_side = int(settings.WINNOW_TRANSLATE_MAX_SIDE)
    resized = max(image.size) > max_side
    if resized:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    translate(generator_for(checkpoint, direction), image).save(out, "PNG")
    return out.getvalue(), checkpoint, resized


# --- augmentation: a data set balanced with synthetic images ----------------------------------


def start_augmentation(*, run: Run, count: int | None, requested_by: AbstractBaseUser,
                       checkpoint_id: int | None = None, direction: str | None = None) -> Augmentation:
    """Queue a job that translates `count` images of the majority domain into the minority domain.

    The direction defaults to majority -> minority by the split's train counts, and `count` to the
    difference (what balances the two). Sources are train images only, so no test image leaks into
    synthetic training data. Refused: a count outside 1..the available sources, no checkpoint.
    """
    checkpoint = pick_checkpoint(run=run, checkpoint_id=checkpoint_id)
    counts = train_counts(run.split)
    if direction is None:
        direction = "AB" if counts[Domain.A] >= counts[Domain.B] else "BA"
    if direction not in DIRECTIONS:
        raise InvalidInput('direction must be "AB" (A images made into B) or "BA"')
    sources = counts[Domain(direction[0])]
    if count is None:
        count = abs(counts[Domain.A] - counts[Domain.B])
    if not 1 <= count <= sources:
        raise InvalidInput(
            f"count must be between 1 and {sources} (the train images of domain {direction[0]}), got {count}",
            code="invalid_count",
        )
    with transaction.atomic():
        augmentation = Augmentation.objects.create(
            run=run, checkpoint=checkpoint, direction=direction, count=count, requested_by=requested_by
        )
        transaction.on_commit(lambda: enqueue_augmentation(augmentation.pk))
    return augmentation


def enqueue_augmentation(augmentation_id: int) -> None:
    from . import jobs

    jobs.augment.apply_async((augmentation_id,), queue=training_queue())


def execute_augmentation(*, augmentation_id: int) -> None:
    """Produce the augmentation zip: <target domain>/synthetic-*.png plus manifest.json.

    Each image is the source resized so its shorter side is the run's image size (what the model
    was trained on), then translated. The manifest marks every file synthetic and names its source
    (sha256, task), the run and the checkpoint (step and sha256). Claimed queued -> running (or
    taken over from a dead worker), it beats while it works; an error marks it failed.
    """
    if not Augmentation.objects.claim(augmentation_id):
        return
    augmentation = Augmentation.objects.select_related("run__split", "checkpoint").get(pk=augmentation_id)
    name = background.run_claimed(background.JobBeat(Augmentation, augmentation_id),
                                  lambda: _write_augmentation(augmentation))
    Augmentation.objects.filter(pk=augmentation_id).update(
        status=AugmentationStatus.SUCCEEDED, file=name, produced=augmentation.count, finished_at=timezone.now()
    )


def _write_augmentation(augmentation: Augmentation) -> str:
    import torch

    from .cyclegan.infer import translate

    run, checkpoint = augmentation.run, augmentation.checkpoint
    if checkpoint.deleted_at is not None or not storage.exists(checkpoint.file.name):
        raise Conflict(f"checkpoint at step {checkpoint.step} was rotated out before the job ran")
    source_domain, target_domain = augmentation.direction[0], augmentation.direction[1]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = generator_for(checkpoint, augmentation.direction, device)
    size = int(run.config.get("image_size", 256))
    sources = list(
        run.split.items.filter(domain=source_domain, partition=Partition.TRAIN)
        .order_by("asset__sha256")
        .values_list("asset__sha256", "asset__file", "task_id")[: augmentation.count]
    )
    with local_path(checkpoint.file.name).open("rb") as handle:
        checkpoint_sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    name = f"{run.storage_prefix}/augmentations/{augmentation.pk}.zip"
    # From an attempt whose worker died (on a folder storage; object storage keeps no partial files).
    storage.remove_leftovers(f"{run.storage_prefix}/augmentations", f".{augmentation.pk}-*.tmp")

    def write(out: IO[bytes]) -> None:
        items = []
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, (sha256, file_name, task_id) in enumerate(sources, start=1):
                with storage.opened(file_name, f"the image {file_name}") as handle:
                    image = Image.open(handle).convert("RGB")
                scale = size / min(image.size)
                image = image.resize((max(round(image.width * scale), size), max(round(image.height * scale), size)),
                                     Image.Resampling.BICUBIC)
                png = io.BytesIO()
                translate(generator, image).save(png, "PNG")
                data = png.getvalue()
                member = f"{target_domain}/synthetic-{index:05d}-{sha256[:16]}.png"
                archive.writestr(member, data)
                items.append({
                    "file": member, "sha256": hashlib.sha256(data).hexdigest(), "synthetic": True,
                    "domain": target_domain, "source": {"sha256": sha256, "task": task_id, "domain": source_domain},
                })
                if index % 50 == 0:
                    Augmentation.objects.filter(pk=augmentation.pk).update(produced=index)
            manifest = {
                "format": "winnow-augmentation/1", "synthetic": True,
                "run": {"id": run.pk, "split": run.split_id, "split_version": run.split.version, "config": run.config},
                "checkpoint": {"id": checkpoint.pk, "step": checkpoint.step, "sha256": checkpoint_sha256},
                "direction": augmentation.direction, "count": len(items), "items": items,
                "created_at": timezone.now().isoformat(),
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=1))

    storage.put(name, write, prefix=f".{augmentation.pk}-", suffix=".tmp")  # a download never sees half a zip
    return name


def recover_stale_augmentations() -> list[int]:
    """Re-queue running augmentations whose worker stopped beating; each starts over (its zip is
    written whole or not at all). Registered with the sweep of winnow/jobs.py (see apps.py)."""
    return background.recover_stale(Augmentation, enqueue_augmentation)
