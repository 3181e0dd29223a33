"""REST API for quality control: calibration review and gold, annotator scores, audits, consensus.

Thin views: each resolves the object, checks the caller's role, validates the body and calls one
service in `quality.py`.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from winnow import serializers as strict

from . import quality, reports
from .models import Batch, Membership, Project, Role, Task
from .permissions import require_role
from .serializers import (
    AnnotatorRowSerializer,
    AnnotatorStateSerializer,
    AuditDrawnSerializer,
    AuditPlanSerializer,
    AuditVerdictResultSerializer,
    BatchAuditSerializer,
    BatchQualitySerializer,
    CalibrationReportSerializer,
    ConsensusEstimatesSerializer,
    GoldAccuracyQuerySerializer,
    GoldAccuracySerializer,
    GoldSetSerializer,
    PauseSerializer,
    RequeuedSerializer,
    StandingSerializer,
    media_url,
)

OWNER = {Role.OWNER}
REVIEWERS = {Role.OWNER, Role.REVIEWER}


def _require(request: Request, project: Project, roles: set[str], what: str) -> None:
    require_role(request.user, project, roles, what)


def _owned(request: Request, pk: int, what: str) -> Project:
    """For the owner-only routes added with the owner pages: a non-member gets 404, another member 403."""
    project = _project(pk)
    require_role(request.user, project, OWNER, what)
    return project


def _project(pk: int) -> Project:
    return get_object_or_404(Project.objects.alive(), pk=pk)


def _batch(pk: int) -> Batch:
    return get_object_or_404(Batch.objects.alive().select_related("project"), pk=pk)


def _task(pk: int) -> Task:
    return get_object_or_404(Task.objects.alive().select_related("project", "batch"), pk=pk)


class GoldSerializer(strict.Serializer):
    choice = serializers.IntegerField(help_text="the right choice's id")


class AuditVerdictSerializer(strict.Serializer):
    correct = serializers.BooleanField()
    choice = serializers.IntegerField(required=False, allow_null=True, help_text="the right choice, when not correct")


class DrawSerializer(strict.Serializer):
    size = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
    width = serializers.FloatField(required=False, min_value=0.001, max_value=0.99,
                                   help_text="size the sample so the 95% interval is at most this wide")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "size" in attrs and "width" in attrs:
            raise ValidationError("give either size or width, not both")
        return attrs


class RelabelSerializer(strict.Serializer):
    scope = serializers.ChoiceField(choices=["all", "failed"],
                                    help_text="all tasks, or only those with an answer the audit found wrong")


@extend_schema(request=GoldSerializer, responses=GoldSetSerializer)
@api_view(["POST"])
def task_gold(request: Request, pk: int) -> Response:
    """The owner confirms or corrects a calibration task's answer; it becomes a gold task."""
    task = _task(pk)
    _require(request, task.project, OWNER, "review calibration answers")
    body = GoldSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    task = quality.set_gold(task=task, choice_id=body.validated_data["choice"])
    return Response({"task": task.pk, "is_gold": task.is_gold, "gold_choice": task.gold_choice_id,
                     "answer": task.gold_choice.label if task.gold_choice else None})


@extend_schema(request=AuditVerdictSerializer, responses=AuditVerdictResultSerializer)
@api_view(["POST"])
def task_audit(request: Request, pk: int) -> Response:
    """A reviewer marks a sampled task's answer correct, or gives the right choice."""
    task = _task(pk)
    _require(request, task.project, REVIEWERS, "audit")
    body = AuditVerdictSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    audit = quality.submit_audit(task=task, reviewer=request.user, correct=body.validated_data["correct"],
                                 choice_id=body.validated_data.get("choice"))
    audit.batch.refresh_from_db()
    return Response({"task": task.pk, "verdict": audit.verdict, "corrected_choice": audit.corrected_choice_id,
                     "batch_status": audit.batch.status})


@extend_schema(responses=CalibrationReportSerializer)
@api_view(["GET"])
def calibration_report(request: Request, pk: int) -> Response:
    project = _project(pk)
    _require(request, project, OWNER, "read the calibration report")
    return Response(reports.calibration_report(project=project))


@extend_schema(responses=AnnotatorRowSerializer(many=True))
@api_view(["GET"])
def annotators(request: Request, pk: int) -> Response:
    """Members with answer counts, gold accuracy (overall and recent), median time and paused flag."""
    project = _project(pk)
    _require(request, project, OWNER, "see annotator scores")
    return Response(reports.annotator_table(project=project))


@extend_schema(responses=StandingSerializer)
@api_view(["GET"])
def me(request: Request, pk: int) -> Response:
    """The caller's own standing in the project: role, pause, and gold accuracy (overall and recent).

    Any member may ask; it tells nobody which tasks were gold, only how their gold answers scored.
    """
    project = _project(pk)
    _require(request, project, {Role.OWNER, Role.REVIEWER, Role.ANNOTATOR}, "see their standing")
    membership = Membership.objects.filter(project=project, user=request.user).first()
    if membership is None:  # role_in cached a membership removed since: answer as for a stranger
        raise PermissionDenied("you are not a member of this project")
    return Response(reports.my_standing(project=project, membership=membership))


@extend_schema(request=None, responses=RequeuedSerializer)
@api_view(["POST"])
def annotator_reinstate(request: Request, pk: int, username: str) -> Response:
    project = _project(pk)
    _require(request, project, OWNER, "reinstate annotators")
    membership = quality.reinstate(project=project, username=username)
    return Response({"username": username, "paused": membership.paused_at is not None})


@extend_schema(request=PauseSerializer, responses=AnnotatorStateSerializer)
@api_view(["POST"])
def annotator_pause(request: Request, pk: int, username: str) -> Response:
    """Pause a member by hand (owners): no more tasks for them, their leases released, until reinstated."""
    project = _owned(request, pk, "pause annotators")
    body = PauseSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    membership = quality.pause_annotator(project=project, username=username, reason=body.validated_data["reason"])
    return Response(AnnotatorStateSerializer({"username": username, "paused": membership.paused_at is not None,
                                              "paused_reason": membership.paused_reason}).data)


@extend_schema(parameters=[GoldAccuracyQuerySerializer], responses=GoldAccuracySerializer)
@api_view(["GET"])
def gold_accuracy(request: Request, pk: int) -> Response:
    """Each annotator's gold accuracy per day (or week) of answering, for the Quality page's chart."""
    project = _owned(request, pk, "read annotators' gold accuracy")
    query = GoldAccuracyQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return Response(GoldAccuracySerializer(reports.gold_accuracy_series(project=project, **query.validated_data)).data)


@extend_schema(responses=BatchAuditSerializer(many=True))
@api_view(["GET"])
def project_batch_audits(request: Request, pk: int) -> Response:
    """Every audited production batch's figures (current round): errors, intervals, decision."""
    project = _owned(request, pk, "read audit figures")
    return Response(BatchAuditSerializer(reports.audit_overview(project=project), many=True).data)


@extend_schema(request=None, responses=RequeuedSerializer)
@api_view(["POST"])
def annotator_relabel(request: Request, pk: int, username: str) -> Response:
    """Discard an annotator's answers on batches not yet accepted and send those tasks back."""
    project = _project(pk)
    _require(request, project, OWNER, "send answers back")
    return Response({"username": username, "requeued": quality.relabel_annotator(project=project, username=username)})


@extend_schema(
    request=DrawSerializer, responses={200: AuditPlanSerializer, 201: AuditDrawnSerializer},
    parameters=[OpenApiParameter("size", int), OpenApiParameter("width", float)],
)
@api_view(["GET", "POST"])
def batch_audit(request: Request, pk: int) -> Response:
    """GET: the plan an audit would follow. POST: draw the sample (labeled → audited)."""
    batch = _batch(pk)
    _require(request, batch.project, OWNER, "audit batches")
    source = request.query_params if request.method == "GET" else request.data
    body = DrawSerializer(data=source)
    body.is_valid(raise_exception=True)
    if request.method == "GET":
        return Response(reports.audit_plan(batch=batch, size=body.validated_data.get("size"),
                                           width=body.validated_data.get("width")))
    batch, audits = quality.draw_audit_sample(batch=batch, **body.validated_data)
    return Response(
        {"batch": batch.pk, "status": batch.status, "round": batch.audit_round, "seed": batch.audit_seed,
         "plan": batch.audit_plan, "tasks": [a.task_id for a in audits]},
        status=status.HTTP_201_CREATED,
    )


@extend_schema(responses=BatchQualitySerializer)
@api_view(["GET"])
def batch_quality(request: Request, pk: int) -> Response:
    batch = _batch(pk)
    _require(request, batch.project, REVIEWERS, "read quality figures")
    return Response(reports.batch_quality(batch=batch))


@extend_schema(request=RelabelSerializer, responses=RequeuedSerializer)
@api_view(["POST"])
def batch_relabel(request: Request, pk: int) -> Response:
    batch = _batch(pk)
    _require(request, batch.project, OWNER, "send batches back")
    body = RelabelSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    count = quality.relabel_batch(batch=batch, scope=body.validated_data["scope"])
    batch.refresh_from_db()
    return Response({"batch": batch.pk, "status": batch.status, "requeued": count})


@extend_schema(responses=ConsensusEstimatesSerializer)
@api_view(["GET"])
def batch_consensus(request: Request, pk: int) -> Response:
    """Dawid–Skene estimates beside the majority answer, with low-agreement flags."""
    batch = _batch(pk)
    _require(request, batch.project, REVIEWERS, "read consensus estimates")
    return Response(reports.consensus_estimates(batch=batch))


class PendingAuditSerializer(strict.Serializer):
    """One open audit on the reviewer page's queue."""

    task = serializers.IntegerField()
    batch = serializers.IntegerField()
    answer = serializers.IntegerField(allow_null=True)
    answer_label = serializers.CharField(allow_null=True)
    image_url = serializers.CharField(allow_null=True)


@extend_schema(responses=PendingAuditSerializer(many=True))
@api_view(["GET"])
def pending_audits(request: Request, pk: int) -> Response:
    """Open audits the caller may take (the reviewer page's queue)."""
    project = _project(pk)
    _require(request, project, REVIEWERS, "audit")
    rows = [
        {
            "task": a.task_id,
            "batch": a.batch_id,
            "answer": a.answer_id,
            "answer_label": a.answer.label if a.answer else None,
            "image_url": media_url(request, a.task.asset.file.name) if a.task.asset else None,
        }
        for a in reports.pending_audits(project=project, reviewer=request.user)
    ]
    return Response(rows)


urlpatterns = [
    path("tasks/<int:pk>/gold/", task_gold, name="task-gold"),
    path("tasks/<int:pk>/audit/", task_audit, name="task-audit"),
    path("projects/<int:pk>/calibration/", calibration_report, name="project-calibration"),
    path("projects/<int:pk>/me/", me, name="project-me"),
    path("projects/<int:pk>/annotators/", annotators, name="project-annotators"),
    path("projects/<int:pk>/annotators/<str:username>/reinstate/", annotator_reinstate, name="annotator-reinstate"),
    path("projects/<int:pk>/annotators/<str:username>/relabel/", annotator_relabel, name="annotator-relabel"),
    path("projects/<int:pk>/annotators/<str:username>/pause/", annotator_pause, name="annotator-pause"),
    path("projects/<int:pk>/gold-accuracy/", gold_accuracy, name="project-gold-accuracy"),
    path("projects/<int:pk>/batch-audits/", project_batch_audits, name="project-batch-audits"),
    path("projects/<int:pk>/audits/", pending_audits, name="project-audits"),
    path("batches/<int:pk>/audit/", batch_audit, name="batch-audit"),
    path("batches/<int:pk>/quality/", batch_quality, name="batch-quality"),
    path("batches/<int:pk>/relabel/", batch_relabel, name="batch-relabel"),
    path("batches/<int:pk>/consensus/", batch_consensus, name="batch-consensus"),
]
