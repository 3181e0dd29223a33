"""Training runs on approved splits: their progress, metrics, sample grids, checkpoints and augmentations.

A run's files (checkpoints, sample grids, augmentation zips) live under a folder of the media
storage named by an unguessable key, and are served only through the API, which checks membership.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from labeling.models import Project, Split
from winnow.jobs import BackgroundJob


def new_storage_key() -> str:
    return secrets.token_hex(12)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Run(BackgroundJob):
    """A CycleGAN training of a split: a background job (winnow/jobs.py) whose worker beats while it
    trains; a run whose worker died is queued again and resumes from its last checkpoint."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    split = models.ForeignKey(Split, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # The resolved CycleGAN config (every default filled in), as the checkpoints record it too.
    config = models.JSONField(default=dict)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    storage_key = models.CharField(max_length=24, default=new_storage_key, editable=False, unique=True)
    # Which execution owns the run: a worker that finds another token here has been replaced and stops.
    worker_token = models.CharField(max_length=32, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Where each execution started: [{"attempt": 1, "from_step": 0, "worker": …, "at": …}, …].
    history = models.JSONField(default=list, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    images_per_s = models.FloatField(null=True, blank=True)
    elapsed_s = models.FloatField(default=0.0)
    stop_reason = models.CharField(max_length=20, blank=True)  # completed, cancelled, time_limit

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_RUN_STALE_SECONDS)

    @property
    def storage_prefix(self) -> str:
        return f"runs/{self.pk}-{self.storage_key}"

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    def eta_seconds(self) -> float | None:
        """Remaining time at the latest measured speed; None until there is one."""
        if self.status != RunStatus.RUNNING or not self.images_per_s or not self.total_steps:
            return None
        batch = int(self.config.get("batch_size", 1))
        return max(self.total_steps - self.step, 0) * batch / self.images_per_s


class MetricPoint(models.Model):
    """Losses averaged over one logging interval, the lr and the speed, as of `step`."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField()
    lr = models.FloatField()
    images_per_s = models.FloatField()
    losses = models.JSONField(default=dict)  # training.cyclegan.train.LOSS_NAMES: G_ab_gan, …, D_a, D_b
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="metricpoint_unique_step")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class Sample(models.Model):
    """A grid of the fixed sample images: real A, fake B, rec A, real B, fake A, rec B per row."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    image = models.FileField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="sample_unique_step")]

    def __str__(self) -> str:
        return f"sample of run {self.run_id} at step {self.step}"


class Checkpoint(models.Model):
    """A full training state (nets, optimisers, schedulers, scaler, step). Older ones are rotated out."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    file = models.FileField(max_length=300)
    byte_size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)  # the file was rotated out (keep_checkpoints)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_step")]

    def __str__(self) -> str:
        return f"checkpoint of run {self.run_id} at step {self.step}"


class AugmentationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Augmentation(BackgroundJob):
    """N synthetic images of the minority domain, translated from the majority domain, as a zip."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="augmentations")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.RESTRICT, related_name="+")
    direction = models.CharField(max_length=2)  # AB: A images made into B; BA: the reverse
    count = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=AugmentationStatus.choices, default=AugmentationStatus.QUEUED)
    file = models.FileField(max_length=300, blank=True)
    produced = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"augmentation {self.pk} of run {self.run_id}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_RUN_STALE_SECONDS)

    @property
    def project(self) -> Project:
        return self.run.project


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Evaluation(BackgroundJob):
    """Numbers for one checkpoint of a run: FID/KID, known-mapping PSNR/SSIM, classifier gain.

    `config` says what was asked (metrics and their settings, resolved); `results` holds one entry
    per metric, or the reason it was skipped (training/evaluations.py documents the shapes).
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="evaluations")
    # RESTRICT, not PROTECT: a checkpoint row outlives its rotated-out file, and deleting the run
    # deletes both its checkpoints and its evaluations.
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.RESTRICT, related_name="+")
    step = models.PositiveIntegerField()  # the checkpoint's, kept should its file be rotated out
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED)
    config = models.JSONField(default=dict)
    results = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of run {self.run_id} at step {self.step}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_RUN_STALE_SECONDS)

    @property
    def project(self) -> Project:
        return self.run.project
