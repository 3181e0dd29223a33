"""The background-job base: a row per long-running job, claimed, beating while it works, taken over when stale.

Five kinds of work are such rows: exports and webhook deliveries (labeling), runs, evaluations and
augmentations (training). Each moves queued -> running -> succeeded | failed (a model names its
own stored values: an export that succeeded is "done", a delivery is pending, sending, delivered).
One implementation makes a redelivered message or a killed worker harmless for all of them:

* `Model.objects.claim(pk)` moves a queued job to running with one conditional UPDATE; exactly one
  caller wins. A running job whose heartbeat is older than the model's `stale_seconds()` may be
  claimed too: its worker died, and a redelivered message takes it over.
* `run_claimed(JobBeat(Model, pk), work)` runs the work while a thread writes `heartbeat_at` every
  WINNOW_JOB_HEARTBEAT_SECONDS (a thread, so a slow step never looks like a dead worker), and marks
  the job failed, with the error, if the work raises.
* Every worker runs `sweep()` when it starts and then every WINNOW_JOB_SWEEP_SECONDS: each app's
  registered recovery puts its stale running jobs back in the queue and sends their job again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

log = logging.getLogger(__name__)

T = TypeVar("T")


def describe(error: BaseException | str) -> str:
    """How a failure is recorded on its job: a domain refusal's message (it says what to do), else
    the exception's class and message."""
    from .exceptions import DomainError  # DRF, which models (this module's importers) need not load

    if isinstance(error, str):
        return error
    if isinstance(error, DomainError):
        return error.message
    return f"{type(error).__name__}: {error}"


class BackgroundJobQuerySet(models.QuerySet):
    """Claims and sweeps. Each method is one conditional UPDATE (or a read), so it may be chained
    after a filter that guards it, e.g. `Run.objects.filter(worker_token=token).fail(pk, exc)`."""

    def _stale(self, seconds: float | None) -> Q:
        model = self.model
        cutoff = timezone.now() - timedelta(seconds=model.stale_seconds() if seconds is None else seconds)
        return Q(status=model.RUNNING) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))

    def stale(self, seconds: float | None = None) -> BackgroundJobQuerySet:
        """Running jobs whose last beat is older than `seconds` (the model's stale period by default)."""
        return self.filter(self._stale(seconds))

    def claim(self, pk: int, **changes: Any) -> bool:
        """Queued (or stale running) -> running, with `changes`; True when this caller won the job.

        `started_at` keeps the first attempt's start; `heartbeat_at` starts now.
        """
        model = self.model
        now = timezone.now()
        return self.filter(Q(status=model.QUEUED) | self._stale(None), pk=pk).update(
            **{"status": model.RUNNING, "heartbeat_at": now, "started_at": Coalesce(F("started_at"), now), **changes}
        ) == 1

    def beat(self, pk: int) -> bool:
        """Write a running job's heartbeat; False when it is not running (finished, requeued, or not ours)."""
        return self.filter(pk=pk, status=self.model.RUNNING).update(heartbeat_at=timezone.now()) == 1

    def fail(self, pk: int, error: BaseException | str, **changes: Any) -> bool:
        """Running -> failed with the error recorded; True when this caller made the change."""
        model = self.model
        message = describe(error)[: model.ERROR_MAX_LENGTH]
        return self.filter(pk=pk, status=model.RUNNING).update(
            **{"status": model.FAILED, "finished_at": timezone.now(), model.ERROR_FIELD: message, **changes}
        ) == 1

    def requeue_stale(self, seconds: float | None = None, **changes: Any) -> list[int]:
        """Put stale running jobs back to queued, each by its own conditional update (so several
        workers sweeping at once requeue a job once); the ids this caller requeued."""
        requeued = []
        for pk in self.stale(seconds).values_list("pk", flat=True):
            if self.stale(seconds).filter(pk=pk).update(status=self.model.QUEUED, **changes):
                requeued.append(pk)
        return requeued


class BackgroundJob(models.Model):
    """What every job row has: a status, when it was created, started, finished and last beat, and its error.

    A subclass redeclares `status` with its own choices and says which stored value plays each role
    (QUEUED, RUNNING, SUCCEEDED, FAILED), and how long a silent worker is given (`stale_seconds`).
    """

    QUEUED: ClassVar[str] = "queued"
    RUNNING: ClassVar[str] = "running"
    SUCCEEDED: ClassVar[str] = "succeeded"
    FAILED: ClassVar[str] = "failed"
    ERROR_FIELD: ClassVar[str] = "error"
    ERROR_MAX_LENGTH: ClassVar[int] = 5000
    STALE_SECONDS: ClassVar[float] = 60

    status = models.CharField(max_length=10, default="queued")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)  # the first attempt's
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written every heartbeat while a worker works on it; a running job whose beat is older than
    # `stale_seconds()` lost its worker and is taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = BackgroundJobQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def stale_seconds(cls) -> float:
        return cls.STALE_SECONDS


# --- beating ----------------------------------------------------------------------------------


def heartbeat_seconds() -> float:
    return float(settings.WINNOW_JOB_HEARTBEAT_SECONDS)


class Beating(threading.Thread):
    """Calls `beat()` now and every `interval` seconds until `finished` is set, from a thread, not
    the work's own loop, so a slow step (a large image on a CPU) never looks like a dead worker.
    A context manager: started on entry, finished and joined on exit."""

    beat_at_start = True

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.finished = threading.Event()

    def beat(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            if not self.beat_at_start:
                self.finished.wait(self.interval)
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


class JobBeat(Beating):
    """Writes one running job's `heartbeat_at` every heartbeat period. `jobs` is the model, or a
    queryset that guards the writes (a run's execution token); `lost` is set once a beat finds the
    job no longer running under that guard (finished, requeued, or taken over by another worker).

    The first beat comes one interval after the start: the claim has just written one, and work
    done sooner (most webhook deliveries) never opens this thread's database connection."""

    beat_at_start = False

    def __init__(self, jobs: type[BackgroundJob] | BackgroundJobQuerySet, pk: int, interval: float | None = None) -> None:
        self.jobs: BackgroundJobQuerySet = jobs.objects.all() if isinstance(jobs, type) else jobs
        self.pk = pk
        self.lost = threading.Event()
        super().__init__(f"heartbeat-{self.jobs.model._meta.model_name}-{pk}", interval or heartbeat_seconds())

    def beat(self) -> None:
        try:
            if self.jobs.beat(self.pk):
                self.after_beat()
            else:
                self.lost.set()
        except DatabaseError:  # the database restarting: beat again next time round
            log.exception("heartbeat of %s %s failed", self.jobs.model._meta.model_name, self.pk)

    def after_beat(self) -> None:
        """A kind's own check on each beat that found its job still running (a run watches for a cancel)."""


def run_claimed(beat: JobBeat, work: Callable[[], T], *, on_failed: Callable[[], None] | None = None) -> T:
    """Run the work of a job this caller has claimed, while `beat` beats for it.

    If the work raises, the job is marked failed with the error (when it is still running under the
    beat's guard; `on_failed` runs if this call made that change) and the error is re-raised, for
    the worker's log.
    """
    with beat:
        try:
            return work()
        except Exception as exc:  # the job's edge: record the failure, then re-raise
            if beat.jobs.fail(beat.pk, exc) and on_failed is not None:
                on_failed()
            raise


# --- taking over from dead workers ----------------------------------------------------------

Recovery = Callable[[], list[int]]
_recoveries: dict[str, Recovery] = {}


def register(model: type[BackgroundJob], recover: Recovery) -> None:
    """Have every worker's sweep call `recover`, which requeues the model's stale jobs, sends their
    job again and returns their ids. Apps register in their AppConfig.ready."""
    _recoveries[model._meta.label] = recover


def registered_models() -> list[type[BackgroundJob]]:
    """Every job kind an app registered, for the metrics."""
    from django.apps import apps

    return [apps.get_model(label) for label in _recoveries]


def recover_stale(model: type[BackgroundJob], enqueue: Callable[[int], None], **changes: Any) -> list[int]:
    """The usual recovery: stale running jobs of `model` go back to queued (with `changes`), and
    `enqueue(pk)` sends each one's job again; the ids requeued."""
    requeued = model.objects.requeue_stale(**changes)
    for pk in requeued:
        log.warning("%s %s lost its worker; queued again", model._meta.verbose_name, pk)
        enqueue(pk)
    return requeued


def sweep() -> dict[str, list[int]]:
    """One pass of every registered recovery; the ids each requeued, by model label."""
    done = {}
    for label, recover in _recoveries.items():
        try:
            done[label] = recover()
        except Exception:  # the database or the broker restarting: this kind is swept next time round
            log.exception("recovering stale %s jobs failed", label)
    return done


def sweep_seconds() -> float:
    return float(settings.WINNOW_JOB_SWEEP_SECONDS)


class Sweeper(Beating):
    """Sweeps when the worker starts and then every WINNOW_JOB_SWEEP_SECONDS, so a job whose worker
    was killed is taken over once it is stale, whether or not any worker restarts."""

    def __init__(self) -> None:
        super().__init__("winnow-job-sweeper", sweep_seconds())

    def beat(self) -> None:
        close_old_connections()
        sweep()


_sweeper: Sweeper | None = None


def start_sweeper() -> Sweeper:
    """Start this process's sweeper (once); called when a Celery worker is ready."""
    global _sweeper
    if _sweeper is None or not _sweeper.is_alive():
        _sweeper = Sweeper()
        _sweeper.start()
    return _sweeper
