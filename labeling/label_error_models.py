"""The models of likely label errors (labeling/label_errors.py, docs/LABEL_ERRORS.md): a check (a background
job), the label quality score it gave each task, the annotators' quality, and the reviewers' verdicts from the
likely-errors queue.

Kept out of models.py for its size; models.py imports them, so `from .models import LabelCheck` works as
for every other model. Related models are named as strings, so this module imports none of models.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from winnow.jobs import BackgroundJob

__all__ = ["AnnotatorQuality", "ErrorReview", "LabelCheck", "LabelCheckStatus", "LabelQuality", "ReviewVerdict"]


class LabelCheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LabelCheck(BackgroundJob):
    """One run of the likely-error check over a project, or over one batch (`batch`), and what it found.

    The classifier always learns from the whole project's labels; a batch check scores and estimates that
    batch only. `figures` holds the per-batch estimates: {batch id: {scored, flagged, estimated_errors}}."""

    SUCCEEDED = LabelCheckStatus.DONE
    ERROR_MAX_LENGTH = 500

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="label_checks")
    batch = models.ForeignKey("labeling.Batch", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=LabelCheckStatus.choices, default=LabelCheckStatus.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    steps_done = models.PositiveSmallIntegerField(default=0)
    method = models.CharField(max_length=20, blank=True)  # confident-learning (overlap 1) or crowdlab
    feature_version = models.PositiveIntegerField(null=True, blank=True)
    labeled = models.PositiveIntegerField(default=0)  # labeled images the classifier learned from
    trusted = models.PositiveIntegerField(default=0)  # of those, gold or reviewed: learned from, never scored
    not_embedded = models.PositiveIntegerField(default=0)  # answered tasks left out: their image has no embedding
    scored = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    estimated_errors = models.FloatField(null=True, blank=True)
    estimate_method = models.CharField(max_length=120, blank=True)
    heldout = models.PositiveIntegerField(default=0)  # trusted labels predicted out of sample
    heldout_correct = models.PositiveIntegerField(default=0)
    figures = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)

    STEPS = 4  # read the labels, fit and predict the folds, score, write

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "-id"], name="labelcheck_project_idx")]

    def __str__(self) -> str:
        return f"label check of {self.project_id}: {self.status}"

    @classmethod
    def stale_seconds(cls) -> float:
        return float(settings.WINNOW_LABEL_ERRORS_STALE_SECONDS)

    @property
    def progress(self) -> float:
        if self.status == LabelCheckStatus.DONE:
            return 1.0
        return self.steps_done / self.STEPS


class LabelQuality(models.Model):
    """A task's label quality score from the latest check that scored it: in [0, 1], low meaning its answer
    (`answer`, the one scored) is likely wrong; `likely_error` is cleanlab's flag, `suggested` the choice the
    check finds most likely right."""

    task = models.OneToOneField("labeling.Task", on_delete=models.CASCADE, primary_key=True,
                                related_name="label_quality")
    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    batch = models.ForeignKey("labeling.Batch", on_delete=models.CASCADE, related_name="+", db_index=False)
    check_run = models.ForeignKey(LabelCheck, on_delete=models.CASCADE, related_name="scores", db_index=False)
    answer = models.ForeignKey("labeling.Choice", on_delete=models.CASCADE, related_name="+", db_index=False)
    suggested = models.ForeignKey("labeling.Choice", on_delete=models.CASCADE, related_name="+", db_index=False)
    score = models.FloatField()
    likely_error = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # The likely-errors queue and ?ordering=label_quality: lowest score first, per project or batch.
            models.Index(fields=["project", "score"], name="labelquality_project_idx"),
            models.Index(fields=["batch", "score"], name="labelquality_batch_idx"),
            models.Index(fields=["check_run"], name="labelquality_check_idx"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id}: {self.score:.3f}"


class AnnotatorQuality(models.Model):
    """An annotator's quality from one check: CROWDLAB's annotator quality with several annotators per task,
    else the mean label quality score of the tasks they answered."""

    check_run = models.ForeignKey(LabelCheck, on_delete=models.CASCADE, related_name="annotators")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    quality = models.FloatField()
    agreement = models.FloatField(null=True, blank=True)  # with the consensus (several annotators only)
    labeled = models.PositiveIntegerField(default=0)
    worst_choice = models.ForeignKey("labeling.Choice", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["check_run", "annotator"], name="annotatorquality_unique")]

    def __str__(self) -> str:
        return f"{self.annotator_id}: {self.quality:.3f}"


class ReviewVerdict(models.TextChoices):
    CORRECT = "correct", "Correct"
    INCORRECT = "incorrect", "Incorrect"


class ErrorReview(models.Model):
    """A reviewer's verdict on a task from the likely-errors queue: the answer it judged (`answer`), and the
    right choice when that answer was wrong. Not an audit: these verdicts never enter a batch's error rate."""

    task = models.ForeignKey("labeling.Task", on_delete=models.CASCADE, related_name="error_reviews")
    batch = models.ForeignKey("labeling.Batch", on_delete=models.CASCADE, related_name="+", db_index=False)
    answer = models.ForeignKey("labeling.Choice", on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=10, choices=ReviewVerdict.choices)
    corrected_choice = models.ForeignKey("labeling.Choice", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+")
    score = models.FloatField(null=True, blank=True)  # the task's label quality score when it was reviewed
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # One verdict per answer: a second submit for the same answer is refused (409), so two reviewers
        # taking the same task count once.
        constraints = [models.UniqueConstraint(fields=["task", "answer"], name="errorreview_unique_answer")]
        indexes = [models.Index(fields=["batch", "verdict"], name="errorreview_batch_idx")]

    def __str__(self) -> str:
        return f"review of task {self.task_id}: {self.verdict}"
