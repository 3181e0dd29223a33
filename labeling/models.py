"""The labeling data model: projects and their taxonomy, batches of content-addressed images,
tasks, annotations, audits and the frozen domain splits that training reads.

Status fields are TextChoices; transitions are claimed in services with conditional UPDATEs.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from winnow.jobs import BackgroundJob

from .vectors import EmbeddingField

# Free text has a bound everywhere, so no request can store (and every page then send) megabytes of it.
MAX_INSTRUCTIONS = 50_000
MAX_LONG_HINT = 5_000


def new_secret() -> str:
    return secrets.token_hex(32)


class ProjectQuerySet(models.QuerySet["Project"]):
    def alive(self) -> ProjectQuerySet:
        return self.filter(deleted_at__isnull=True)

    def for_user(self, user: models.Model) -> ProjectQuerySet:
        return self.alive().filter(memberships__user=user).distinct()


class Project(models.Model):
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, max_length=MAX_INSTRUCTIONS)
    question = models.CharField(max_length=500, default="Which class does this image belong to?")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Annotators who label each task.")
    gold_rate = models.FloatField(default=0.05, help_text="Share of production tasks that are gold.")
    audit_sample_size = models.PositiveIntegerField(default=200)
    max_error_rate = models.FloatField(
        default=0.02, help_text="A batch is accepted when the audit's upper 95% bound is at most this."
    )
    min_gold_accuracy = models.FloatField(default=0.7)
    min_gold_answers = models.PositiveIntegerField(default=10)
    lease_seconds = models.PositiveIntegerField(default=600)
    # Model assistance (docs/ASSIST.md): the share of a suggested grid page that is trap gold shown with a
    # deliberately wrong suggestion, and the order of the single-image page.
    trap_rate = models.FloatField(default=0.1, help_text="Share of a suggested grid page that is trap gold.")
    lease_order = models.CharField(max_length=12, default="upload", help_text="upload, or uncertainty: least "
                                   "confident suggestion first on the single-image page.")
    calibration_approved_at = models.DateTimeField(null=True, blank=True)
    webhook_secret = models.CharField(max_length=64, default=new_secret, editable=False)
    # The secret before the last rotation: deliveries are signed with both for WEBHOOK_SECRET_GRACE_HOURS
    # after `webhook_secret_rotated_at`, so receivers can switch without dropping a delivery.
    webhook_secret_previous = models.CharField(max_length=64, blank=True, editable=False)
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What a Scale-compatible client sent for this project (type, taxonomy key, parameter history), so the
    # /v1 API can answer in the shapes that client expects. Empty for projects made through Winnow's own API.
    scale_params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def calibration_approved(self) -> bool:
        return self.calibration_approved_at is not None

    def role_of(self, user: models.Model) -> str | None:
        if not getattr(user, "is_authenticated", False):
            return None
        membership = self.memberships.filter(user=user).only("role").first()
        return membership.role if membership else None


class Domain(models.TextChoices):
    A = "A", "Domain A"
    B = "B", "Domain B"
    EXCLUDED = "excluded", "Excluded"


class Choice(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="choices")
    label = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    long_hint = models.TextField(blank=True, max_length=MAX_LONG_HINT)
    hotkey = models.CharField(max_length=1)
    domain = models.CharField(max_length=8, choices=Domain.choices, default=Domain.EXCLUDED)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "hotkey"], name="choice_unique_hotkey"),
            models.UniqueConstraint(fields=["project", "label"], name="choice_unique_label"),
        ]

    def __str__(self) -> str:
        return self.label


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    # Set by the quality checks when an annotator's gold accuracy falls under the project's threshold.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    # Set when the owner reinstates a paused annotator: the pause rule then judges only gold answers
    # given since, so a reinstated annotator starts afresh instead of being paused by their old misses.
    gold_scored_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    @property
    def can_annotate(self) -> bool:
        return self.role in {Role.ANNOTATOR, Role.REVIEWER, Role.OWNER} and self.paused_at is None


class BatchKind(models.TextChoices):
    CALIBRATION = "calibration", "Calibration"
    PRODUCTION = "production", "Production"


class BatchStatus(models.TextChoices):
    OPEN = "open", "Open"  # accepting uploads
    FINALIZED = "finalized", "Finalized"  # no more uploads; waiting for labels
    LABELING = "labeling", "Labeling"  # at least one answer
    LABELED = "labeled", "Labeled"  # every task has its answer
    AUDITED = "audited", "Audited"  # audit sample drawn; reviewers at work
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


# A batch's lifecycle: the statuses each may move to. Every path that moves a batch, the plain SQL of
# the answer path included, checks its move against this table (`BatchQuerySet.transition`,
# `batch_sources`), so a new path cannot invent one.
BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    BatchStatus.OPEN: frozenset({BatchStatus.FINALIZED}),  # uploads closed
    BatchStatus.FINALIZED: frozenset({BatchStatus.LABELING, BatchStatus.LABELED}),  # first answer; or nothing to label
    BatchStatus.LABELING: frozenset({BatchStatus.LABELED}),  # last open task answered
    BatchStatus.LABELED: frozenset({BatchStatus.AUDITED, BatchStatus.LABELING}),  # sample drawn; or an undo, a relabel
    BatchStatus.AUDITED: frozenset({BatchStatus.ACCEPTED, BatchStatus.REJECTED, BatchStatus.LABELING}),
    BatchStatus.REJECTED: frozenset({BatchStatus.LABELING}),  # sent back for relabeling
    BatchStatus.ACCEPTED: frozenset(),  # final: its labels may become a split
}
# Batches whose tasks are handed out to annotators.
LABELABLE_BATCH_STATUSES = (BatchStatus.FINALIZED, BatchStatus.LABELING)


def batch_sources(to: str, *, among: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The statuses a batch may move to `to` from (limited to `among`); ValueError if `among` holds a move
    the lifecycle does not allow, so a path asking for an illegal move fails the first time it runs."""
    allowed = tuple(s for s in BatchStatus.values if to in BATCH_TRANSITIONS[s])
    if among is None:
        return allowed
    illegal = [s for s in among if s not in allowed]
    if illegal:
        raise ValueError(f"a batch cannot move from {', '.join(map(str, illegal))} to {to}")
    return tuple(among)


class BatchQuerySet(models.QuerySet["Batch"]):
    def alive(self) -> BatchQuerySet:
        return self.filter(deleted_at__isnull=True)

    def transition(self, to: str, *, among: tuple[str, ...] | None = None, **fields: Any) -> int:
        """Move the batches of this queryset that are in a status allowed to reach `to` (or in `among`,
        checked against BATCH_TRANSITIONS) with one conditional UPDATE; returns how many moved. Callers
        filter to one batch and treat 1 as having won the transition."""
        return self.filter(status__in=batch_sources(to, among=among)).update(status=to, **fields)


class Batch(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=BatchKind.choices, default=BatchKind.PRODUCTION)
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.OPEN)
    callback_url = models.URLField(max_length=2000, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A Scale "self label" batch: a pre-production batch the project's own team labels. Like a calibration
    # batch it needs no approved calibration; the flag only records what the client asked for.
    self_label = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    labeled_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Audit: the plan shown before drawing, the seed that makes the sample reproducible, the round
    # (a rejected and relabeled batch is audited again in a new round).
    audit_round = models.PositiveIntegerField(default=0)
    audit_seed = models.BigIntegerField(null=True, blank=True)
    audit_plan = models.JSONField(default=dict, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="batch_unique_name"),
            # The target of the tasks' (batch, project) foreign key (migration 0008).
            models.UniqueConstraint(fields=["id", "project"], name="batch_id_project_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.name}"

    def counts(self) -> dict[str, int]:
        """Tasks by status, plus the total and how many are done."""
        rows = self.tasks.alive().values_list("status").annotate(n=models.Count("id"))
        counts = {status: 0 for status in TaskStatus.values}
        counts.update({status: n for status, n in rows})
        counts["total"] = sum(counts[s] for s in TaskStatus.values)
        return counts

    def progress(self) -> float:
        counts = self.counts()
        live = counts["total"] - counts[TaskStatus.FAILED] - counts[TaskStatus.CANCELLED]
        return counts[TaskStatus.COMPLETED] / live if live else 0.0


class Asset(models.Model):
    """An image stored once, addressed by the sha256 of its bytes."""

    sha256 = models.CharField(max_length=64, unique=True)
    file = models.FileField(max_length=300)
    thumbnail = models.FileField(max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    byte_size = models.PositiveBigIntegerField()
    # A 64-bit DCT perceptual hash of the thumbnail (labeling/duplicates.py), signed to fit a bigint:
    # near-duplicates (resized, re-encoded) differ in a few bits.
    phash = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending download"  # a URL task whose image is not fetched yet
    QUEUED = "queued", "Queued"  # waiting for answers
    COMPLETED = "completed", "Completed"  # has its final answer
    FAILED = "failed", "Failed"  # the image could not be ingested; `error` says why
    CANCELLED = "cancelled", "Cancelled"


class DecidedBy(models.TextChoices):
    SINGLE = "single", "Single annotator"
    CONSENSUS = "consensus", "Consensus"
    GOLD = "gold", "Owner (gold)"
    AUDIT = "audit", "Audit correction"


class TaskQuerySet(models.QuerySet["Task"]):
    def alive(self) -> TaskQuerySet:
        return self.filter(deleted_at__isnull=True)


class Task(models.Model):
    # Task rows are written in bulk (10k URL tasks per request), so every index is paid for on insert:
    # the project and batch FKs are covered by the composite indexes below, and the choice FKs are looked up only
    # when a choice is deleted, which the taxonomy editor does rarely and only for unused choices.
    # On PostgreSQL one composite foreign key, (batch_id, project_id) -> batch (id, project_id), stands for
    # these two (migration 0008): it also guarantees a task's project is its batch's, and checks one row
    # per inserted task instead of two. Deletion cascades are Django's either way.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tasks", db_index=False, db_constraint=False
    )
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="tasks", db_index=False, db_constraint=False)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="tasks", null=True, blank=True, db_index=False)
    # NULL, not "", for "no unique_id": the partial unique constraint below must ignore those rows.
    unique_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    source_url = models.URLField(max_length=2000, blank=True)
    source_name = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    # Answers, maintained by services: how many live annotations, the final answer and how it was reached.
    annotation_count = models.PositiveSmallIntegerField(default=0)
    # Answers wanted beyond the project's overlap, e.g. one more to break a tie.
    extra_answers = models.PositiveSmallIntegerField(default=0)
    final_choice = models.ForeignKey(
        Choice, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    decided_by = models.CharField(max_length=10, choices=DecidedBy.choices, blank=True)
    agreement = models.FloatField(null=True, blank=True)
    # Gold: a task whose right answer the owner confirmed. Mixed into production to score annotators.
    is_gold = models.BooleanField(default=False)
    gold_choice = models.ForeignKey(
        Choice, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    # A gold task copied into a production batch points at the calibration task it came from.
    gold_source = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "unique_id"],
                condition=Q(unique_id__isnull=False),
                name="task_unique_id_per_project",
            )
        ]
        indexes = [
            # The leasing query takes a batch's queued tasks in upload order. Partial, so it holds only the
            # queue. Ordered by (created_at, id) rather than id alone on purpose: the primary key cannot give
            # that order, so the planner never walks the answered tasks that cluster at the front of the
            # table in pk order (its statistics cannot tell it they cluster there, and it would).
            models.Index(
                fields=["batch", "created_at", "id"], condition=Q(status="queued", deleted_at__isnull=True),
                name="task_queued_idx",
            ),
            models.Index(fields=["batch", "status"], name="task_batch_status_idx"),
            # Exports and listings walk a project's tasks in id order (keyset pagination).
            models.Index(fields=["project", "id"], name="task_project_id_idx"),
            # URL tasks have no asset until downloaded and only gold copies have a source: partial indexes
            # keep the NULLs (most rows, at insert) out. The batch FK is covered by task_batch_status_idx.
            models.Index(fields=["asset"], condition=Q(asset__isnull=False), name="task_asset_idx"),
            models.Index(fields=["gold_source"], condition=Q(gold_source__isnull=False), name="task_gold_source_idx"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class Lease(models.Model):
    """An annotator's claim on a task until `expires_at`. Expired leases count for nothing."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="leases")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the annotator skipped the task: the lease is released (expired) and the row stays as a
    # marker so the same task is not handed straight back to them (see services.SKIP_COOLDOWN).
    skipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="lease_unique_annotator")]
        indexes = [models.Index(fields=["annotator", "expires_at"], name="lease_annotator_idx")]

    def __str__(self) -> str:
        return f"lease on task {self.task_id} until {self.expires_at:%H:%M:%S}"

    def is_active(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or timezone.now())


class AnnotationQuerySet(models.QuerySet["Annotation"]):
    def live(self) -> AnnotationQuerySet:
        return self.filter(discarded_at__isnull=True)


class Annotation(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    choice = models.ForeignKey(Choice, on_delete=models.PROTECT, related_name="+")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Relabeling discards answers instead of deleting them, so the history stays auditable.
    discarded_at = models.DateTimeField(null=True, blank=True)
    # Given on a suggested grid page by confirming the machine's suggestion (docs/ASSIST.md); audit figures
    # are reported separately for assisted and unassisted answers. A database default, as the answer path
    # inserts in plain SQL.
    assisted = models.BooleanField(default=False, db_default=False)

    objects = AnnotationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"],
                condition=Q(discarded_at__isnull=True),
                name="annotation_one_live_per_annotator",
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator} → {self.choice} on {self.task_id}"


class AuditVerdict(models.TextChoices):
    PENDING = "pending", "Pending"
    CORRECT = "correct", "Correct"
    INCORRECT = "incorrect", "Incorrect"


class Audit(models.Model):
    """A reviewer's check of one sampled task in one audit round of its batch."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="audits")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="audits")
    round = models.PositiveIntegerField(default=1)
    stratum = models.CharField(max_length=100, blank=True)
    answer = models.ForeignKey(Choice, on_delete=models.PROTECT, null=True, related_name="+")
    verdict = models.CharField(max_length=10, choices=AuditVerdict.choices, default=AuditVerdict.PENDING)
    corrected_choice = models.ForeignKey(Choice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "round"], name="audit_unique_task_round")]

    def __str__(self) -> str:
        return f"audit of task {self.task_id} (round {self.round}): {self.verdict}"


class SplitStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"


class Partition(models.TextChoices):
    TRAIN = "train", "Train"
    VAL = "val", "Validation"
    TEST = "test", "Test"


class Split(models.Model):
    """A frozen, versioned manifest of domain A and B images built from accepted batches."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="splits")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=SplitStatus.choices, default=SplitStatus.DRAFT)
    options = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="split_unique_version")]

    def __str__(self) -> str:
        return f"{self.project} split v{self.version}"


class SplitItem(models.Model):
    split = models.ForeignKey(Split, on_delete=models.CASCADE, related_name="items")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="+")
    domain = models.CharField(max_length=8, choices=Domain.choices)
    partition = models.CharField(max_length=5, choices=Partition.choices)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["split", "asset"], name="splititem_unique_asset")]

    def __str__(self) -> str:
        return f"{self.domain}/{self.partition} {self.asset_id}"


# --- webhooks and callbacks -------------------------------------------------------------------


class WebhookEvent(models.TextChoices):
    TASK_COMPLETED = "task.completed", "Task completed"
    BATCH_LABELED = "batch.labeled", "Batch labeled"
    BATCH_AUDITED = "batch.audited", "Batch audited (accepted or rejected)"
    SPLIT_APPROVED = "split.approved", "Split approved"
    RUN_FINISHED = "run.finished", "Training run finished"


class Webhook(models.Model):
    """A URL that receives a project's events, signed with the project's webhook secret."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="Event names this URL receives.")
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first or next attempt
    SENDING = "sending", "Sending"  # an attempt is being made
    DELIVERED = "delivered", "Delivered"  # the receiver answered 2xx
    FAILED = "failed", "Failed"  # gave up: the retry window closed


class Delivery(BackgroundJob):
    """One event sent to one URL (a project webhook, or a task's or batch's callback_url), with its attempts.

    The row is written in the same transaction as the change it reports, so an event is never sent for a
    change that rolled back, and never lost for one that committed. Each attempt is a background job
    (winnow/jobs.py): pending -> sending, claimed by its attempt number, then delivered, failed or
    pending again for the next attempt; `last_error` holds the job's error.
    """

    QUEUED = DeliveryStatus.PENDING
    RUNNING = DeliveryStatus.SENDING
    SUCCEEDED = DeliveryStatus.DELIVERED
    ERROR_FIELD = "last_error"
    ERROR_MAX_LENGTH = 500

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    url = models.URLField(max_length=2000)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = None  # a delivery's error is the last attempt's:
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "id"], name="delivery_project_idx"),
            # The sweep that re-sends deliveries whose message was lost reads only the pending ones,
            # and the one that takes over attempts whose worker died only the sending ones.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due_idx"),
            models.Index(fields=["heartbeat_at"], condition=Q(status="sending"), name="delivery_sending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.url}: {self.status}"


# --- background exports -----------------------------------------------------------------------


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"  # done, and its file deleted after EXPORT_RETENTION_HOURS


class Export(BackgroundJob):
    """An export written to a file by a worker, for projects too large to stream in one request.

    A background job (winnow/jobs.py): claimed, beating while its worker writes, taken over when stale.
    """

    SUCCEEDED = ExportStatus.DONE
    ERROR_MAX_LENGTH = 500

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    batch = models.ForeignKey(Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    split = models.ForeignKey(Split, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    format = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    # Storage name under exports/ in the media storage; it carries a random token, so it cannot be guessed.
    file = models.CharField(max_length=300, blank=True)
    byte_size = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.format} export of {self.project}: {self.status}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.EXPORT_STALE_SECONDS)

    @property
    def expires_at(self) -> datetime | None:
        """When the export job's pruning deletes the file (EXPORT_RETENTION_HOURS after it was written)."""
        if self.finished_at is None or self.status != ExportStatus.DONE or not settings.EXPORT_RETENTION_HOURS:
            return None
        return self.finished_at + timedelta(hours=settings.EXPORT_RETENTION_HOURS)

    @property
    def progress(self) -> float:
        if self.status == ExportStatus.DONE:
            return 1.0
        return min(1.0, self.rows_done / self.rows_total) if self.rows_total else 0.0


# --- model assistance (docs/ASSIST.md) ---------------------------------------------------------


class LeaseOrder(models.TextChoices):
    UPLOAD = "upload", "Upload order"
    UNCERTAINTY = "uncertainty", "Least confident suggestion first"


class AssistJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FeatureJob(BackgroundJob):
    """One run of the embedding job for a project: train a feature model (or use the current one) and embed
    every image of the project that has no embedding of that model yet. `version` is the feature model's."""

    SUCCEEDED = AssistJobStatus.DONE
    ERROR_MAX_LENGTH = 500

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="feature_jobs")
    status = models.CharField(max_length=10, choices=AssistJobStatus.choices, default=AssistJobStatus.QUEUED)
    retrain = models.BooleanField(default=False, help_text="train a new feature model even if one exists")
    version = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20, blank=True)  # rotation-cnn, or backbone:<weights file name>
    trained = models.BooleanField(default=False)
    labels_used = models.PositiveIntegerField(default=0)
    assets_total = models.PositiveIntegerField(default=0)
    assets_done = models.PositiveIntegerField(default=0)
    weights = models.CharField(max_length=300, blank=True)  # storage name of the trained model
    train_seconds = models.FloatField(null=True, blank=True)
    embed_seconds = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "-id"], name="featurejob_project_idx")]

    def __str__(self) -> str:
        return f"features of {self.project_id}: {self.status}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_ASSIST_STALE_SECONDS)

    @property
    def progress(self) -> float:
        if self.status == AssistJobStatus.DONE:
            return 1.0
        return min(1.0, self.assets_done / self.assets_total) if self.assets_total else 0.0


class Embedding(models.Model):
    """An image's feature vector under a project's feature model (unit length, EMBEDDING_DIM floats).

    The column is pgvector's `vector(EMBEDDING_DIM)` with an HNSW index where the server has the
    extension, else `real[]` searched exactly (migration 0016); reads and writes are the same SQL."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    vector = EmbeddingField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "asset"], name="embedding_unique_asset")]

    def __str__(self) -> str:
        return f"embedding of {self.asset_id} in {self.project_id} (v{self.version})"


class SuggestionFit(BackgroundJob):
    """One refit of a project's suggestion model (debounced after answers) and what it measured: the
    labels it learned from and its accuracy on held-out gold."""

    SUCCEEDED = AssistJobStatus.DONE
    ERROR_MAX_LENGTH = 500

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="suggestion_fits")
    status = models.CharField(max_length=10, choices=AssistJobStatus.choices, default=AssistJobStatus.QUEUED)
    feature_version = models.PositiveIntegerField(null=True, blank=True)
    gold = models.PositiveIntegerField(default=0)  # gold tasks with an embedding
    accepted = models.PositiveIntegerField(default=0)  # answered non-gold tasks with an embedding
    heldout = models.PositiveIntegerField(default=0)  # gold answers predicted without being learned from
    heldout_correct = models.PositiveIntegerField(default=0)
    temperature = models.FloatField(default=1.0)
    suggested = models.PositiveIntegerField(default=0)  # queued tasks given a suggestion
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "-id"], name="suggestionfit_project_idx")]

    def __str__(self) -> str:
        return f"suggestions of {self.project_id}: {self.status}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_ASSIST_STALE_SECONDS)


class Suggestion(models.Model):
    """The suggestion model's choice for a queued task, with its calibrated confidence."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True, related_name="suggestion")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+", db_index=False)
    choice = models.ForeignKey(Choice, on_delete=models.CASCADE, related_name="+", db_index=False)
    confidence = models.FloatField()
    fit = models.ForeignKey(SuggestionFit, on_delete=models.SET_NULL, null=True, related_name="+", db_index=False)

    class Meta:
        indexes = [
            # Least confident first (lease order "uncertainty"), and a suggested page: one choice, most confident first.
            models.Index(fields=["batch", "confidence"], name="suggestion_uncertain_idx"),
            models.Index(fields=["batch", "choice", "-confidence"], name="suggestion_choice_idx"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id}: {self.choice_id} ({self.confidence:.2f})"


class Trap(models.Model):
    """A gold task shown on a suggested page with a deliberately wrong suggestion (`shown_choice`).
    Answering it with the shown choice is accepting the trap: a wrong gold answer, scored as any."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    shown_choice = models.ForeignKey(Choice, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="trap_unique_annotator")]

    def __str__(self) -> str:
        return f"trap {self.task_id} for {self.annotator_id}"


class NearDuplicate(models.Model):
    """Two images of a project that are the same picture resized or re-encoded (labeling/duplicates.py)."""

    class Kind(models.TextChoices):
        HASH = "phash", "Perceptual hash"
        EMBEDDING = "embedding", "Embedding distance"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    asset_low = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+", db_index=False)
    asset_high = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    distance = models.FloatField()  # bits apart (phash) or cosine distance (embedding)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "asset_low", "asset_high"], name="neardup_unique_pair")]

    def __str__(self) -> str:
        return f"{self.asset_low_id} ≈ {self.asset_high_id} ({self.kind})"



# Likely label errors (docs/LABEL_ERRORS.md): in their own module for size, found here with the rest.
from .label_error_models import *  # noqa: E402, F403 (AnnotatorQuality, ErrorReview, LabelCheck, LabelQuality…)
