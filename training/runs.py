"""Training runs: start, queue, execute, cancel and resume them, and take over those whose worker died.

A run is a background job (winnow/jobs.py): queued -> running -> succeeded | failed | cancelled,
every transition claimed with a conditional UPDATE. Everything the executing worker writes is
guarded by its `worker_token`, so a redelivered job, a recovered run or a worker that lost its run
can never write twice.

Torch is imported inside the functions that need it, on the training worker. Run files live in the
media storage under `run.storage_prefix` (winnow/storage.py). The training worker may be a machine of
its own: with object storage it fetches the split's images and the checkpoint it resumes from into
its local cache, trains into that cache and stores each sample and checkpoint as it is written.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling import splits as split_service
from labeling.models import Domain, Partition, Split, SplitStatus
from winnow import jobs as background
from winnow import storage
from winnow.exceptions import Conflict, IllegalTransition, InvalidInput

from .models import Checkpoint, MetricPoint, Run, RunStatus, Sample

log = logging.getLogger(__name__)

# Config keys the worker decides, never the request: where and with how many loader processes to run.
WORKER_KEYS = ("device", "num_workers")


def training_queue() -> str:
    return settings.WINNOW_TRAINING_QUEUE


def local_path(name: str) -> Path:
    """A local file of the stored file `name`: the file itself on a folder storage, else a cached copy."""
    return storage.local_copy(name)


# --- starting, cancelling and resuming --------------------------------------------------------


def train_counts(split: Split) -> dict[str, int]:
    """Images per domain in the split's train partition."""
    rows = split.items.filter(partition=Partition.TRAIN).values_list("domain").order_by()
    return {domain: rows.filter(domain=domain).count() for domain in (Domain.A, Domain.B)}


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full config with every default filled in (the paper's), or InvalidInput naming the bad value."""
    from .cyclegan.config import ConfigError, CycleGANConfig, knobs

    allowed = {name for name, _ in knobs()} - set(WORKER_KEYS)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InvalidInput(f"unknown config keys: {', '.join(unknown)}", code="invalid_config")
    try:
        return CycleGANConfig(**config).to_dict()
    except ConfigError as exc:
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
    needed = max(settings.WINNOW_MIN_DOMAIN_IMAGES, resolved["batch_size"])
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
    from . import jobs  # jobs imports this module; import here to keep the module graph one-way

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


def latest_checkpoint(run: Run) -> Checkpoint | None:
    """The run's newest checkpoint whose file still exists."""
    for checkpoint in run.checkpoints.filter(deleted_at__isnull=True).order_by("-step"):
        if storage.exists(checkpoint.file.name):
            return checkpoint
    return None


# --- executing (on the training worker) -------------------------------------------------------

# Set when the worker is asked to shut down: the run in progress checkpoints and goes back to the queue.
SHUTTING_DOWN = threading.Event()


def request_shutdown() -> None:
    """Called when the worker is asked to stop: the running run checkpoints and returns to the queue."""
    SHUTTING_DOWN.set()


class Heartbeat(background.JobBeat):
    """Beats for one execution of a run (writes guarded by its token) and watches for a cancel request.

    It sets `stop` when the run is cancelled or when another execution took it over (`lost`).
    """

    def __init__(self, run_id: int, token: str) -> None:
        super().__init__(Run.objects.filter(worker_token=token), run_id)
        self.stop = threading.Event()
        self.cancelled = threading.Event()

    def beat(self) -> None:
        super().beat()
        if self.lost.is_set():
            self.stop.set()

    def after_beat(self) -> None:
        if self.jobs.filter(pk=self.pk, cancel_requested_at__isnull=False).exists():
            self.cancelled.set()
            self.stop.set()


def execute_run(*, run_id: int) -> None:
    """Train a queued run to the end, or until it is cancelled, times out or the worker shuts down.

    Claims the run (queued, or running with a dead worker -> running) by a conditional update, so a
    redelivered message is a no-op while its worker lives. Continues from the newest checkpoint whose
    file exists; metrics and samples logged after it by an execution that died are dropped and
    redone. Any error marks the run failed and is re-raised.
    """
    token = uuid.uuid4().hex
    if not Run.objects.claim(run_id, worker_token=token, worker=socket.gethostname()[:200], attempts=F("attempts") + 1):
        log.info("run %s is not queued; nothing to do", run_id)
        return
    heartbeat = Heartbeat(run_id, token)
    background.run_claimed(heartbeat, lambda: _train(Run.objects.select_related("split").get(pk=run_id), heartbeat),
                           on_failed=lambda: announce_finished(run_id))


def _data_workers() -> int:
    # A prefork pool's child is a daemon process, and daemons may not start the loader's processes.
    if multiprocessing.current_process().daemon:
        return 0
    return int(settings.WINNOW_TRAINING_DATA_WORKERS)


def _train(run: Run, heartbeat: Heartbeat) -> None:
    from .cyclegan.config import CycleGANConfig
    from .cyclegan.data import Domains
    from .cyclegan.train import LOSS_NAMES, train

    began = timezone.now()  # this execution's share of the run's wall time, added to elapsed_s at the end
    mine = heartbeat.jobs.filter(pk=run.pk, status=RunStatus.RUNNING)
    checkpoint = latest_checkpoint(run)
    from_step = checkpoint.step if checkpoint else 0
    for stale in run.samples.filter(step__gt=from_step):
        storage.delete(stale.image.name)
    run.samples.filter(step__gt=from_step).delete()
    run.metrics.filter(step__gt=from_step).delete()
    entry = {"attempt": run.attempts, "from_step": from_step, "worker": run.worker, "at": timezone.now().isoformat()}
    mine.update(history=[*run.history, entry], step=from_step)

    # Images are content-addressed: a worker's cached copy of one never goes stale.
    domains = Domains(
        a=storage.local_copies([name for _, name in split_service.training_files(run.split, Domain.A)], immutable=True),
        b=storage.local_copies([name for _, name in split_service.training_files(run.split, Domain.B)], immutable=True),
    )
    device = settings.WINNOW_TRAINING_DEVICE or None
    cfg = CycleGANConfig.from_dict({**run.config, "device": device, "num_workers": _data_workers()})
    # Written in place on a folder storage; into the local cache, then stored, on object storage.
    out_dir = storage.work_path(run.storage_prefix)

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
            name = f"{run.storage_prefix}/samples/{path.name}"
            storage.publish(name)
            Sample.objects.update_or_create(run_id=run.pk, step=step, defaults={"image": name})

    def on_checkpoint(path: Path, step: int, removed: list[Path]) -> None:
        if not mine.exists():
            return
        name = f"{run.storage_prefix}/checkpoints/{path.name}"
        storage.publish(name)
        Checkpoint.objects.update_or_create(
            run_id=run.pk, step=step, defaults={"file": name, "byte_size": path.stat().st_size, "deleted_at": None},
        )
        rotate_checkpoints(run, keep=cfg.keep_checkpoints,
                           removed=[f"{run.storage_prefix}/checkpoints/{p.name}" for p in removed])

    def should_stop() -> bool:
        return heartbeat.stop.is_set() or SHUTTING_DOWN.is_set()

    result = train(cfg, domains, out_dir, on_log, should_stop,
                   resume_from=local_path(checkpoint.file.name) if checkpoint else None,
                   on_sample=on_sample, on_checkpoint=on_checkpoint)

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


def rotate_checkpoints(run: Run, *, keep: int, removed: list[str]) -> None:
    """Mark the checkpoints the trainer rotated out of its folder (`removed`) deleted, and delete their
    stored files. With object storage the worker's folder holds only what this machine wrote, so the
    run's checkpoints beyond the newest `keep` are also looked up in the database and deleted."""
    names = set(removed)
    if storage.local_root() is None:
        alive = run.checkpoints.filter(deleted_at__isnull=True).order_by("-step")
        names.update(alive.values_list("file", flat=True)[keep:])
    for name in sorted(names):
        storage.delete(name)
    Checkpoint.objects.filter(run_id=run.pk, file__in=names).update(deleted_at=timezone.now())


# --- taking over from dead workers ----------------------------------------------------------


def recover_stale_runs() -> list[int]:
    """Re-queue running runs whose worker stopped beating (killed, lost power); they resume from
    their last checkpoint. A stale run with a pending cancel request is cancelled instead.
    Each is claimed by a conditional update, so several workers sweeping at once recover it once.
    Registered with the sweep of winnow/jobs.py (see apps.py)."""
    asked = Run.objects.stale().filter(cancel_requested_at__isnull=False)
    for run_id in asked.values_list("pk", flat=True):
        if asked.filter(pk=run_id).update(status=RunStatus.CANCELLED, finished_at=timezone.now(),
                                          stop_reason="cancelled", worker_token=""):
            announce_finished(run_id)
    return background.recover_stale(Run, enqueue_run, worker_token="")
