"""REST API of likely label errors (docs/LABEL_ERRORS.md): checks (the job), the likely-errors queue, a
reviewer's verdict on a task from it, and the quality page's figures. Thin views: resolve, authorise, call one
domain function in `label_errors.py`, render.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from winnow import serializers as strict

from . import label_errors
from .models import Batch, LabelCheck, LabelCheckStatus, Project, ReviewVerdict, Task
from .permissions import OWNERS, REVIEWERS, require_role
from .serializers import media_url


class CheckRequestSerializer(strict.Serializer):
    batch = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                     help_text="check one batch (the classifier still learns from the whole "
                                               "project); omit to check every batch")


class LabelCheckSerializer(strict.Serializer):
    """A check: the job's state and what it found."""

    id = serializers.IntegerField()
    project = serializers.IntegerField()
    batch = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=LabelCheckStatus.choices)
    progress = serializers.FloatField()
    error = serializers.CharField(allow_blank=True, help_text="why it failed (no embeddings, too few labels)")
    method = serializers.CharField(allow_blank=True, help_text="confident-learning (overlap 1) or crowdlab")
    feature_version = serializers.IntegerField(allow_null=True)
    labeled = serializers.IntegerField(help_text="labeled images the classifier learned from")
    trusted = serializers.IntegerField(help_text="of those: gold or reviewed answers, learned from, never scored")
    not_embedded = serializers.IntegerField(help_text="answered tasks left out: their image has no embedding yet")
    scored = serializers.IntegerField()
    flagged = serializers.IntegerField(help_text="tasks flagged as likely errors")
    estimated_errors = serializers.FloatField(allow_null=True, help_text="estimated wrong answers among the scored")
    estimate_method = serializers.CharField(allow_blank=True)
    heldout = serializers.IntegerField(help_text="trusted answers predicted by a model fitted without them")
    heldout_correct = serializers.IntegerField()
    heldout_accuracy = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class QueueQuerySerializer(strict.Serializer):
    batch = serializers.IntegerField(required=False, min_value=1, help_text="only this batch's tasks")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=label_errors.QUEUE_PAGE)


class LikelyErrorSerializer(strict.Serializer):
    """A task of the likely-errors queue."""

    task = serializers.IntegerField()
    batch = serializers.IntegerField()
    score = serializers.FloatField(help_text="label quality in [0, 1]; low: the answer is likely wrong")
    likely_error = serializers.BooleanField()
    answer = serializers.IntegerField()
    answer_label = serializers.CharField()
    suggested = serializers.IntegerField(help_text="the choice the check finds most likely right")
    suggested_label = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)


class ReviewSerializer(strict.Serializer):
    correct = serializers.BooleanField()
    choice = serializers.IntegerField(required=False, allow_null=True, help_text="the right choice, when not correct")


class ReviewResultSerializer(strict.Serializer):
    task = serializers.IntegerField()
    verdict = serializers.ChoiceField(choices=ReviewVerdict.choices)
    answer = serializers.IntegerField(help_text="the answer judged")
    corrected_choice = serializers.IntegerField(allow_null=True, help_text="the task's answer now, when corrected")
    score = serializers.FloatField(allow_null=True)


class BatchErrorsSerializer(strict.Serializer):
    batch = serializers.IntegerField()
    name = serializers.CharField()
    check = serializers.IntegerField(help_text="the latest check that scored the batch")
    checked_at = serializers.DateTimeField()
    method = serializers.CharField()
    estimate_method = serializers.CharField()
    scored = serializers.IntegerField()
    flagged = serializers.IntegerField()
    estimated_errors = serializers.FloatField(help_text="wrong answers the check estimated in the batch")
    reviewed = serializers.IntegerField(help_text="tasks reviewed from the likely-errors queue")
    found = serializers.IntegerField(help_text="of those, answers the reviewers corrected")
    left = serializers.FloatField(help_text="the estimate less the corrections made since the check")


class AnnotatorLabelQualitySerializer(strict.Serializer):
    username = serializers.CharField()
    quality = serializers.FloatField(help_text="CROWDLAB annotator quality, or the mean label quality of their answers")
    agreement = serializers.FloatField(allow_null=True, help_text="share agreeing with the consensus (overlap ≥ 2)")
    labeled = serializers.IntegerField()
    worst_choice = serializers.CharField(allow_null=True, help_text="the choice they most often get wrong")
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_answers = serializers.IntegerField()


class LabelQualitySummarySerializer(strict.Serializer):
    latest = LabelCheckSerializer(allow_null=True)
    queue = serializers.IntegerField(help_text="tasks waiting in the likely-errors queue")
    batches = BatchErrorsSerializer(many=True)
    annotator_method = serializers.CharField(allow_null=True)
    annotators = AnnotatorLabelQualitySerializer(many=True)


def _project(pk: int) -> Project:
    return get_object_or_404(Project.objects.alive(), pk=pk)


@extend_schema(methods=["GET"], responses=LabelCheckSerializer(many=True))
@extend_schema(methods=["POST"], request=CheckRequestSerializer,
               responses={201: LabelCheckSerializer, 200: LabelCheckSerializer})
@api_view(["GET", "POST"])
def project_checks(request: Request, pk: int) -> Response:
    """GET: the project's latest checks, newest first (owners and reviewers). POST: queue a check of the
    project or of one batch (owners): 201, or 200 with the check of that scope already queued."""
    project = _project(pk)
    if request.method == "GET":
        require_role(request.user, project, REVIEWERS, "read label checks")
        checks = LabelCheck.objects.filter(project=project).order_by("-id")[:20]
        return Response(LabelCheckSerializer([label_errors.check_state(c) for c in checks], many=True).data)
    require_role(request.user, project, OWNERS, "check labels")
    body = CheckRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    batch = None
    if body.validated_data["batch"] is not None:
        batch = Batch.objects.alive().filter(pk=body.validated_data["batch"], project=project).first()
        if batch is None:
            raise serializers.ValidationError({"batch": [f"batch {body.validated_data['batch']} is not one of this "
                                                         "project's batches"]})
    check, created = label_errors.schedule_check(project=project, batch=batch, requested_by=request.user)
    return Response(LabelCheckSerializer(label_errors.check_state(check)).data,
                    status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(responses=LabelCheckSerializer)
@api_view(["GET"])
def check_detail(request: Request, pk: int) -> Response:
    """One check: its progress, or why it failed, and what it found."""
    check = get_object_or_404(LabelCheck.objects.select_related("project"), pk=pk, project__deleted_at__isnull=True)
    require_role(request.user, check.project, REVIEWERS, "read label checks")
    return Response(LabelCheckSerializer(label_errors.check_state(check)).data)


@extend_schema(parameters=[QueueQuerySerializer], responses=LikelyErrorSerializer(many=True))
@api_view(["GET"])
def likely_errors(request: Request, pk: int) -> Response:
    """The likely-errors queue: scored tasks the caller may review, lowest label quality first. Not the audit:
    its verdicts never enter a batch's error rate."""
    project = _project(pk)
    require_role(request.user, project, REVIEWERS, "review likely errors")
    query = QueueQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    batch = None
    if "batch" in query.validated_data:
        batch = get_object_or_404(Batch.objects.alive(), pk=query.validated_data["batch"], project=project)
    rows = label_errors.likely_errors(project=project, reviewer=request.user, batch=batch,
                                      limit=query.validated_data["limit"])
    return Response(LikelyErrorSerializer([_row(request, q) for q in rows], many=True).data)


def _row(request: Request, q: Any) -> dict[str, Any]:
    asset = q.task.asset
    return {"task": q.task_id, "batch": q.batch_id, "score": round(q.score, 4), "likely_error": q.likely_error,
            "answer": q.answer_id, "answer_label": q.answer.label, "suggested": q.suggested_id,
            "suggested_label": q.suggested.label, "image_url": media_url(request, asset.file.name) if asset else None}


@extend_schema(request=ReviewSerializer, responses={201: ReviewResultSerializer})
@api_view(["POST"])
def task_review(request: Request, pk: int) -> Response:
    """A reviewer confirms a task's answer from the likely-errors queue, or gives the right choice (which
    overrides the answer, as an audit's correction does). A second verdict on the same answer is a 409."""
    task = get_object_or_404(Task.objects.alive().select_related("project"), pk=pk)
    require_role(request.user, task.project, REVIEWERS, "review likely errors")
    body = ReviewSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    review = label_errors.submit_review(task=task, reviewer=request.user, correct=body.validated_data["correct"],
                                        choice_id=body.validated_data.get("choice"))
    return Response(ReviewResultSerializer({"task": task.pk, "verdict": review.verdict, "answer": review.answer_id,
                                            "corrected_choice": review.corrected_choice_id,
                                            "score": review.score}).data, status=status.HTTP_201_CREATED)


@extend_schema(responses=LabelQualitySummarySerializer)
@api_view(["GET"])
def label_quality(request: Request, pk: int) -> Response:
    """The quality page's figures: per batch the estimated wrong answers, what the review found and what is
    left; per annotator the check's quality beside their gold accuracy (owners)."""
    project = _project(pk)
    require_role(request.user, project, OWNERS, "read label quality figures")
    return Response(LabelQualitySummarySerializer(label_errors.summary(project=project)).data)


urlpatterns = [
    path("projects/<int:pk>/label-checks/", project_checks, name="project-label-checks"),
    path("projects/<int:pk>/likely-errors/", likely_errors, name="project-likely-errors"),
    path("projects/<int:pk>/label-quality/", label_quality, name="project-label-quality"),
    path("label-checks/<int:pk>/", check_detail, name="label-check"),
    path("tasks/<int:pk>/likely-error-review/", task_review, name="task-likely-error-review"),
]
