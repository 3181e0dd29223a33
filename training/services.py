"""Training workflows as plain functions: start, execute, cancel and resume runs; translate; augment.

A run moves queued -> running -> succeeded | failed | cancelled. Every transition is claimed with a
conditional UPDATE, and everything the executing worker writes is guarded by its `worker_token`,
so a redelivered job, a recovered run or a worker that lost its run can never write twice.

Torch is imported inside the functions that need it: the web process loads it only to translate.
Run files live in the media storage under `run.storage_prefix`; the training worker needs that
storage on a local (or shared) filesystem, as `FileSystemStorage` provides.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import uuid
import zipfile
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from labeling import splits as split_service
from labeling.models import Domain, Partition, Split, SplitStatus
from winnow.exceptions import Conflict, IllegalTransition, InvalidInput

from .models import (
    Augmentation,
    AugmentationStatus,
    Checkpoint,
    Evaluation,
    MetricPoint,
    Run,
    RunStatus,
    Sample,
)

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# Config keys the worker decides, never the request: where and with how many loader processes to run.
WORKER_KEYS = ("device", "num_workers")
DIRECTIONS = ("AB", "BA")


def setting(name: str, default: float) -> float:
    """A number from Django settings, else the environment, else the default; nonsense fails loudly."""
    raw = getattr(settings, name, None)
    if raw is None:
        raw = os.environ.get(name) or default
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"setting {name} must be a number, got {raw!r}") from exc


def heartbeat_seconds() -> float:
    return setting("WINNOW_RUN_HEARTBEAT_SECONDS", 5)


def stale_after() -> timedelta:
    """A running run whose heartbeat is older than this lost its worker."""
    return timedelta(seconds=setting("WINNOW_RUN_STALE_SECONDS", 60))


def min_domain_images() -> int:
    return int(setting("WINNOW_MIN_DOMAIN_IMAGES", 4))


def training_queue() -> str:
    return settings.WINNOW_TRAINING_QUEUE


# --- starting, cancelling and resuming --------------------------------------------------------


def train_counts(split: Split) -> dict[str, int]:
    """Images per domain in the split's train partition."""
    counts = {Domain.A: 0, Domain.B: 0}
    rows = split.items.filter(partition=Partition.TRAIN).values_list("domain").order_by()
    for domain in (Domain.A, Domain.B):
        counts[domain] = rows.filter(domain=domain).count()
    return counts


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full config with every default filled in (the paper's), or InvalidInput naming the bad value."""
    from .cyclegan.model import CycleGANConfig

    allowed = set(CycleGANConfig.__dataclass_fields__) - set(WORKER_KEYS)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InvalidInput(f"unknown config keys: {', '.join(unknown)}", code="invalid_config")
    try:
        return CycleGANConfig(**config).to_dict()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid config: {exc}", code="invalid_config") from exc


def start_run(*, split: Split, config: dict[str, Any], requested_by: AbstractBaseUser) -> Run:
    """Queue a CycleGAN run on an approved split; the training queue's worker picks it up.

    Refused: a draft split (409, approve it first), a domain with fewer train images than
    `WINNOW_MIN_DOMAIN_IMAGES` or than one batch (400), a config the model rejects (400).
    The job is enqueued when the transaction commits.
    """
    if split.status != SplitStatus.APPROVED:
        raise Conflict(
            f"split v{split.version} is a draft: an owner approves it (POST /api/v1/splits/{split.pk}/approve/) "
            "before it can train",
            code="split_not_approved",
        )
    resolved = resolve_config(config)
    needed = max(min_domain_images(), resolved["batch_size"])
    counts = train_counts(split)
    for domain in (Domain.A, Domain.B):
        if counts[domain] < needed:
            raise InvalidInput(
                f"domain {domain} has {counts[domain]} training images in split v{split.version}; a run needs at "
                f"least {needed}: label and accept more images, then build and approve a new split",
                code="domain_too_small",
            )
    with transaction.atomic():
        run = Run.objects.create(project=split.project, split=split, config=resolved, requested_by=requested_by)
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def enqueue_run(run_id: int) -> None:
    from . import jobs  # jobs imports services; import here to keep the module graph one-way

    jobs.train_run.apply_async((run_id,), queue=training_queue())


def announce_finished(run_id: int) -> None:
    """Send the project's `run.finished` webhook; called once, by whoever won the final transition."""
    from labeling import webhooks
    from labeling.models import WebhookEvent

    run = Run.objects.select_related("project").get(pk=run_id)
    webhooks.emit(WebhookEvent.RUN_FINISHED, run.project, lambda: {"run": {
        "id": run.pk, "status": run.status, "split": run.split_id, "step": run.step,
        "stop_reason": run.stop_reason, "error": run.error or None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }})


def cancel_run(*, run: Run) -> Run:
    """Cancel a run. A queued run is cancelled at once; a running one is asked to stop, and stops
    (saving a checkpoint) within one heartbeat. Refused (409) once it has finished."""
    now = timezone.now()
    cancelled = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, finished_at=now, stop_reason="cancelled"
    )
    if cancelled:
        announce_finished(run.pk)
    asked = cancelled or Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        cancel_requested_at=Coalesce(F("cancel_requested_at"), now)
    )
    run.refresh_from_db()
    if not asked:
        raise IllegalTransition(f"run {run.pk} has already {run.status}; there is nothing to cancel")
    return run


def resume_run(*, run: Run) -> Run:
    """Queue a cancelled or failed run again; it continues from its last checkpoint (or the start)."""
    with transaction.atomic():
        claimed = Run.objects.filter(pk=run.pk, status__in=[RunStatus.CANCELLED, RunStatus.FAILED]).update(
            status=RunStatus.QUEUED, cancel_requested_at=None, finished_at=None, error="", stop_reason=""
        )
        if not claimed:
            run.refresh_from_db()
            raise IllegalTransition(
                f"run {run.pk} is {run.status}; only a cancelled or failed run can be resumed",
            )
        transaction.on_commit(lambda: enqueue_run(run.pk))
    run.refresh_from_db()
    return run


# --- executing (on the training worker) -------------------------------------------------------

# Set when the worker is asked to shut down: the run in progress checkpoints and goes back to the queue.
SHUTTING_DOWN = threading.Event()


class Beating(threading.Thread):
    """Calls `beat()` now and every `interval` seconds until `finished` is set, from a thread, not
    the work's own loop, so a slow step (a large image on a CPU) never looks like a dead worker.
    A context manager: started on entry, finished and joined on exit."""

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.finished = threading.Event()

    def beat(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.finished.is_set():
                self.beat()
                self.finished.wait(self.interval)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Beating:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished.set()
        self.join()


class Heartbeat(Beating):
    """Writes the run's heartbeat every few seconds and watches for a cancel request.

    It sets `stop` when the run is cancelled or when another execution took it over.
    """

    def __init__(self, run_id: int, token: str, interval: float) -> None:
        super().__init__(f"heartbeat-run-{run_id}", interval)
        self.run_id, self.token = run_id, token
        self.stop = threading.Event()
        self.lost = threading.Event()
        self.cancelled = threading.Event()

    def beat(self) -> None:
        mine = Run.objects.filter(pk=self.run_id, worker_token=self.token, status=RunStatus.RUNNING)
        if not mine.update(heartbeat_at=timezone.now()):
            self.lost.set()
            self.stop.set()
        elif mine.filter(cancel_requested_at__isnull=False).exists():
            self.cancelled.set()
            self.stop.set()


def local_path(name: str) -> Path:
    return Path(default_storage.path(name))


def execute_run(*, run_id: int) -> None:
    """Train a queued run to the end, or until it is cancelled, times out or the worker shuts down.

    Claims the run (queued -> running) by a conditional update, so a redelivered message is a no-op.
    Continues from the newest checkpoint whose file exists; metrics and samples logged after it by
    an execution that died are dropped and redone. Any error marks the run failed and is re-raised.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, worker_token=token, worker=socket.gethostname()[:200], heartbeat_at=now,
        attempts=F("attempts") + 1, started_at=Coalesce(F("started_at"), now),
    )
    if not claimed:
        log.info("run %s is not queued; nothing to do", run_id)
        return
    try:
        _train(Run.objects.select_related("split").get(pk=run_id), token)
    except Exception as exc:
        if Run.objects.filter(pk=run_id, worker_token=token, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:5000]
        ):
            announce_finished(run_id)
        raise


def _latest_checkpoint(run: Run) -> Checkpoint | None:
    for checkpoint in run.checkpoints.filter(deleted_at__isnull=True).order_by("-step"):
        if default_storage.exists(checkpoint.file.name):
            return checkpoint
    return None


def _data_workers() -> int:
    # A prefork pool's child is a daemon process, and daemons may not start the loader's processes.
    if multiprocessing.current_process().daemon:
        return 0
    return int(setting("WINNOW_TRAINING_DATA_WORKERS", 4))


def _train(run: Run, token: str) -> None:
    from .cyclegan.data import Domains
    from .cyclegan.model import CycleGANConfig
    from .cyclegan.train import LOSS_NAMES, train

    began = timezone.now()  # this execution's share of the run's wall time, added to elapsed_s at the end
    mine = Run.objects.filter(pk=run.pk, worker_token=token, status=RunStatus.RUNNING)
    checkpoint = _latest_checkpoint(run)
    from_step = checkpoint.step if checkpoint else 0
    for stale in run.samples.filter(step__gt=from_step):
        default_storage.delete(stale.image.name)
    run.samples.filter(step__gt=from_step).delete()
    run.metrics.filter(step__gt=from_step).delete()
    entry = {"attempt": run.attempts, "from_step": from_step, "worker": run.worker, "at": timezone.now().isoformat()}
    mine.update(history=[*run.history, entry], step=from_step)

    domains = Domains(
        a=[local_path(name) for _, name in split_service.training_files(run.split, Domain.A)],
        b=[local_path(name) for _, name in split_service.training_files(run.split, Domain.B)],
    )
    device = getattr(settings, "WINNOW_TRAINING_DEVICE", None) or os.environ.get("WINNOW_TRAINING_DEVICE") or None
    cfg = CycleGANConfig.from_dict({**run.config, "device": device, "num_workers": _data_workers()})
    out_dir = local_path(run.storage_prefix)

    heartbeat = Heartbeat(run.pk, token, heartbeat_seconds())
    heartbeat.start()

    def on_log(metrics: dict[str, Any]) -> None:
        losses = {name: metrics[name] for name in LOSS_NAMES}
        if mine.update(step=metrics["step"], total_steps=metrics["total_steps"], epoch=metrics["epoch"],
                       images_per_s=metrics["images_per_s"]):
            MetricPoint.objects.update_or_create(
                run_id=run.pk, step=metrics["step"],
                defaults={"epoch": metrics["epoch"], "lr": metrics["lr"], "images_per_s": metrics["images_per_s"],
                          "losses": losses},
            )

    def on_sample(path: Path, step: int) -> None:
        if mine.exists():
            Sample.objects.update_or_create(run_id=run.pk, step=step,
                                            defaults={"image": f"{run.storage_prefix}/samples/{path.name}"})

    def on_checkpoint(path: Path, step: int, removed: list[Path]) -> None:
        if not mine.exists():
            return
        Checkpoint.objects.update_or_create(
            run_id=run.pk, step=step,
            defaults={"file": f"{run.storage_prefix}/checkpoints/{path.name}", "byte_size": path.stat().st_size,
                      "deleted_at": None},
        )
        names = [f"{run.storage_prefix}/checkpoints/{p.name}" for p in removed]
        Checkpoint.objects.filter(run_id=run.pk, file__in=names).update(deleted_at=timezone.now())

    def should_stop() -> bool:
        return heartbeat.stop.is_set() or SHUTTING_DOWN.is_set()

    try:
        result = train(cfg, domains, out_dir, on_log, should_stop,
                       resume_from=local_path(checkpoint.file.name) if checkpoint else None,
                       on_sample=on_sample, on_checkpoint=on_checkpoint)
    finally:
        heartbeat.finished.set()
        heartbeat.join()

    now = timezone.now()
    final = {"step": result.step, "total_steps": result.total_steps, "heartbeat_at": now,
             "elapsed_s": F("elapsed_s") + (now - began).total_seconds()}
    if heartbeat.lost.is_set():
        log.warning("run %s was taken over by another execution; this one stops without writing", run.pk)
    elif result.stopped == "cancelled" and not heartbeat.cancelled.is_set() and SHUTTING_DOWN.is_set():
        # The worker is shutting down: hand the run back to the queue; a worker resumes it.
        if mine.update(status=RunStatus.QUEUED, worker_token="", **final):
            enqueue_run(run.pk)
    elif result.stopped == "cancelled":
        if mine.update(status=RunStatus.CANCELLED, finished_at=now, stop_reason="cancelled", **final):
            announce_finished(run.pk)
    elif mine.update(status=RunStatus.SUCCEEDED, finished_at=now, stop_reason=result.stopped, **final):
        announce_finished(run.pk)


def recover_stale_runs() -> list[int]:
    """Re-queue running runs whose worker stopped beating (killed, lost power); they resume from
    their last checkpoint. A stale run with a pending cancel request is cancelled instead.
    Each is claimed by a conditional update, so several workers sweeping at once recover it once."""
    cutoff = timezone.now() - stale_after()
    stale = Q(status=RunStatus.RUNNING) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    recovered = []
    for run_id, cancel_requested in Run.objects.filter(stale).values_list("pk", "cancel_requested_at"):
        claim = Run.objects.filter(stale, pk=run_id)
        if cancel_requested is not None:
            if claim.update(status=RunStatus.CANCELLED, finished_at=timezone.now(), stop_reason="cancelled",
                            worker_token=""):
                announce_finished(run_id)
            continue
        if claim.update(status=RunStatus.QUEUED, worker_token=""):
            log.warning("run %s lost its worker; re-queued to resume from its last checkpoint", run_id)
            enqueue_run(run_id)
            recovered.append(run_id)
    return recovered


class JobBeat(Beating):
    """Writes a running job's `heartbeat_at` (an evaluation's or an augmentation's) every heartbeat
    period; `recover_stale_jobs` re-queues the jobs whose beat stopped. Use around the work."""

    def __init__(self, model: type[Evaluation] | type[Augmentation], pk: int) -> None:
        super().__init__(f"heartbeat-{model._meta.model_name}-{pk}", heartbeat_seconds())
        self.model, self.pk = model, pk

    def beat(self) -> None:
        try:
            self.model.objects.filter(pk=self.pk, status="running").update(heartbeat_at=timezone.now())
        except Exception:  # the database restarting: beat again next time round
            log.exception("heartbeat of %s %s failed", self.model._meta.model_name, self.pk)


def recover_stale_jobs() -> list[tuple[str, int]]:
    """Re-queue running evaluations and augmentations whose worker stopped beating; each starts over.
    Claimed by a conditional update, so several workers sweeping at once re-queue each once."""
    from .evaluations import enqueue_evaluation

    cutoff = timezone.now() - stale_after()
    stale = Q(status="running") & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    recovered = []
    for model, enqueue in ((Evaluation, enqueue_evaluation), (Augmentation, enqueue_augmentation)):
        for pk in model.objects.filter(stale).values_list("pk", flat=True):
            if model.objects.filter(stale, pk=pk).update(status="queued"):
                log.warning("%s %s lost its worker; re-queued", model._meta.model_name, pk)
                enqueue(pk)
                recovered.append((model._meta.model_name, pk))
    return recovered


class RecoverySweeper(threading.Thread):
    """Runs `recover_stale_runs` and `recover_stale_jobs` when the worker starts and then every half stale period."""

    def __init__(self) -> None:
        super().__init__(name="winnow-run-recovery", daemon=True)
        self.finished = threading.Event()

    def run(self) -> None:
        interval = max(stale_after().total_seconds() / 2, 1.0)
        while not self.finished.is_set():
            close_old_connections()
            try:
                recover_stale_runs()
                recover_stale_jobs()
            except Exception:  # a sweep that fails (database restarting) is retried next time round
                log.exception("recovering stale runs failed")
            self.finished.wait(interval)
        connection.close()


_sweeper: RecoverySweeper | None = None


def start_recovery_sweeper() -> RecoverySweeper:
    global _sweeper
    if _sweeper is None or not _sweeper.is_alive():
        _sweeper = RecoverySweeper()
        _sweeper.start()
    return _sweeper


# --- using a trained run ----------------------------------------------------------------------


def pick_checkpoint(*, run: Run, checkpoint_id: int | None) -> Checkpoint:
    """The requested checkpoint of the run, or its newest; refused when none has its file any more."""
    if checkpoint_id is None:
        checkpoint = _latest_checkpoint(run)
        if checkpoint is None:
            raise Conflict(f"run {run.pk} has no checkpoint yet; wait for its first one", code="no_checkpoint")
        return checkpoint
    checkpoint = run.checkpoints.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        raise InvalidInput(f"checkpoint {checkpoint_id} does not belong to run {run.pk}", code="invalid_checkpoint")
    if checkpoint.deleted_at is not None or not default_storage.exists(checkpoint.file.name):
        raise Conflict(f"checkpoint at step {checkpoint.step} was rotated out; choose a newer one",
                       code="checkpoint_gone")
    return checkpoint


@lru_cache(maxsize=4)
def _generator(path: str, direction: str, mtime: float, device: str) -> nn.Module:
    from .cyclegan.train import load_generator

    return load_generator(path, direction, device=device)


def generator_for(checkpoint: Checkpoint, direction: str, device: str = "cpu") -> nn.Module:
    path = local_path(checkpoint.file.name)
    return _generator(str(path), direction, path.stat().st_mtime, device)


def export_weights(*, checkpoint: Checkpoint) -> str:
    """Storage name of the checkpoint's generators-only file (config + G_ab + G_ba), made once on demand."""
    from .cyclegan.train import export_generators

    name = f"{checkpoint.run.storage_prefix}/exports/step_{checkpoint.step:08d}-generators.pt"
    target = local_path(name)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        export_generators(local_path(checkpoint.file.name), target)
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
    from .cyclegan.train import MIN_TRANSLATE_SIDE, translate

    if direction not in DIRECTIONS:
        raise InvalidInput('direction must be "AB" (A to B) or "BA" (B to A)')
    checkpoint = pick_checkpoint(run=run, checkpoint_id=checkpoint_id)
    image = open_image(file)
    if min(image.size) < MIN_TRANSLATE_SIDE:
        raise InvalidInput(f"the image must be at least {MIN_TRANSLATE_SIDE} px on each side, got {image.width}x{image.height}")
    max_side = int(setting("WINNOW_TRANSLATE_MAX_SIDE", 1024))
    resized = max(image.size) > max_side
    if resized:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    translate(generator_for(checkpoint, direction), image).save(out, "PNG")
    return out.getvalue(), checkpoint, resized


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
    (sha256, task), the run and the checkpoint (step and sha256). Claimed queued -> running.
    """
    if not Augmentation.objects.filter(pk=augmentation_id, status=AugmentationStatus.QUEUED).update(
        status=AugmentationStatus.RUNNING, heartbeat_at=timezone.now()
    ):
        return
    augmentation = Augmentation.objects.select_related("run__split", "checkpoint").get(pk=augmentation_id)
    try:
        with JobBeat(Augmentation, augmentation_id):
            name = _write_augmentation(augmentation)
    except Exception as exc:
        Augmentation.objects.filter(pk=augmentation_id).update(
            status=AugmentationStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000], finished_at=timezone.now()
        )
        raise
    Augmentation.objects.filter(pk=augmentation_id).update(
        status=AugmentationStatus.SUCCEEDED, file=name, produced=augmentation.count, finished_at=timezone.now()
    )


def _write_augmentation(augmentation: Augmentation) -> str:
    import torch

    from .cyclegan.train import translate

    run, checkpoint = augmentation.run, augmentation.checkpoint
    if checkpoint.deleted_at is not None or not default_storage.exists(checkpoint.file.name):
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
    target = local_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    items = []
    for leftover in target.parent.glob(f".{augmentation.pk}-*.tmp"):  # from an attempt whose worker died
        leftover.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{augmentation.pk}-", suffix=".tmp", delete=False) as tmp:
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for index, (sha256, file_name, task_id) in enumerate(sources, start=1):
                    with default_storage.open(file_name, "rb") as handle:
                        image = Image.open(handle).convert("RGB")
                    scale = size / min(image.size)
                    image = image.resize((max(round(image.width * scale), size), max(round(image.height * scale), size)),
                                         Image.Resampling.BICUBIC)
                    out = io.BytesIO()
                    translate(generator, image).save(out, "PNG")
                    data = out.getvalue()
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
                    "run": {"id": run.pk, "split": run.split_id, "split_version": run.split.version,
                            "config": run.config},
                    "checkpoint": {"id": checkpoint.pk, "step": checkpoint.step, "sha256": checkpoint_sha256},
                    "direction": augmentation.direction, "count": len(items), "items": items,
                    "created_at": timezone.now().isoformat(),
                }
                archive.writestr("manifest.json", json.dumps(manifest, indent=1))
            tmp.close()
            os.replace(tmp.name, target)  # atomic: a download never sees half a zip
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    return name


def request_shutdown() -> None:
    """Called when the worker is asked to stop: the running run checkpoints and returns to the queue."""
    SHUTTING_DOWN.set()
