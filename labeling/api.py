"""REST API for labeling (/api/v1). Views parse, authorise, call one service and render."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from winnow import serializers as strict
from winnow import storage
from winnow.exceptions import Conflict
from winnow.parsers import UrlListJSONParser

from . import (
    accounts,
    answers,
    curation,
    duplicates,
    exports,
    formats,
    ingest,
    label_errors,
    leasing,
    projects,
    reports,
    splits,
    webhooks,
)
from .models import (
    Annotation,
    Audit,
    Batch,
    Delivery,
    DeliveryStatus,
    Export,
    ExportStatus,
    Project,
    Role,
    Split,
    Task,
    TaskStatus,
    Webhook,
)
from .permissions import (
    OWNERS,
    IsProjectMember,
    IsProjectOwner,
    IsProjectOwnerOrReadOnly,
    ProjectPermission,
    require_role,
    role_in,
)
from .serializers import (
    AccountCreateSerializer,
    AccountSerializer,
    AnnotationResultSerializer,
    AnswerSerializer,
    AssetSerializer,
    BatchSerializer,
    BulkAnswerResultSerializer,
    IngestResultSerializer,
    MemberSerializer,
    MemberWriteSerializer,
    ProgressSerializer,
    ProjectSerializer,
    SkipResultSerializer,
    SplitSerializer,
    TaskBulkResultSerializer,
    TaskBulkSerializer,
    TaskDetailSerializer,
    TaskFilterSerializer,
    TaskSerializer,
    UploadSerializer,
    media_url,
)

PROJECT_FIELDS = [
    "name", "instructions", "question", "overlap", "gold_rate", "audit_sample_size", "max_error_rate",
    "min_gold_accuracy", "min_gold_answers", "lease_seconds", "trap_rate", "lease_order",
]


# Actions annotators call for every image: their querysets skip what these responses never show, and
# their services check membership (and a paused annotator) themselves, so the view does not query it twice.
LABELING_PERMISSIONS = [ProjectPermission]
LABELING_ACTIONS = {"next_task", "next_tasks", "bulk_annotations", "progress", "annotations", "skip", "undo",
                    "delete_my_annotation"}


# An export answers in its format's media type: JSON ones are JSON documents, the rest files.
EXPORT_RESPONSES = {
    (200, "application/json"): OpenApiTypes.ANY,
    (200, "application/x-ndjson"): OpenApiTypes.BINARY,
    (200, "text/csv"): OpenApiTypes.BINARY,
    (200, "application/zip"): OpenApiTypes.BINARY,
}


class LeasedTaskSerializer(strict.ModelSerializer):
    """A task as an annotator sees it: the image and the lease, nothing that hints at the answer or at gold."""

    asset = AssetSerializer(read_only=True)
    lease_expires_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Task
        fields = ["id", "project", "batch", "unique_id", "metadata", "asset", "lease_expires_at"]
        read_only_fields = fields

    def to_representation(self, task: Task) -> dict[str, Any]:
        """Built by hand: every image an annotator sees passes here, and building the declared fields
        (which stay the schema) costs more than the lease itself. A test holds the two to the same output."""
        request = self.context.get("request")
        asset = task.asset
        return {
            "id": task.pk,
            "project": task.project_id,
            "batch": task.batch_id,
            "unique_id": task.unique_id,
            "metadata": task.metadata,
            "asset": None if asset is None else {
                "sha256": asset.sha256, "width": asset.width, "height": asset.height, "format": asset.format,
                "byte_size": asset.byte_size, "image_url": media_url(request, asset.file.name),
                "thumbnail_url": media_url(request, asset.thumbnail.name),
            },
            "lease_expires_at": _DATETIME.to_representation(task.lease_expires_at),  # type: ignore[attr-defined]
        }


_DATETIME = serializers.DateTimeField()


class LeasedTaskListSerializer(strict.Serializer):
    """What `next-tasks` answers: the leased tasks under `tasks` (empty when none is left)."""

    tasks = LeasedTaskSerializer(many=True)


class LeaseRequestSerializer(strict.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=leasing.MAX_LEASED_TASKS, default=1)


class BulkAnswerItemSerializer(strict.Serializer):
    """Documents one answer of a bulk request; items are checked one by one in the service."""

    task = serializers.IntegerField()
    choice = serializers.IntegerField()
    duration_ms = serializers.IntegerField(min_value=0, default=0)
    assisted = serializers.BooleanField(default=False, help_text="given by confirming a suggestion (suggested page)")


class BulkAnswerSerializer(strict.Serializer):
    answers = BulkAnswerItemSerializer(many=True)


class SplitCreateSerializer(strict.Serializer):
    min_agreement = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True, default=None)
    min_label_quality = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True, default=None,
                                               help_text="leave out tasks whose label quality score is under this")
    val_fraction = serializers.FloatField(min_value=0, max_value=0.5, default=splits.DEFAULT_VAL_FRACTION)
    test_fraction = serializers.FloatField(min_value=0, max_value=0.5, default=splits.DEFAULT_TEST_FRACTION)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["val_fraction"] + attrs["test_fraction"] >= 0.9:
            raise ValidationError("val_fraction + test_fraction must stay under 0.9 so most images train")
        return attrs


def _pk(pk: str | None) -> int:
    """A URL's object id for the services that read the object themselves: 404 when it is not a number."""
    if not (pk or "").isascii() or not (pk or "").isdigit():
        raise Http404
    return int(pk)  # type: ignore[arg-type]


def owner_only(request: Request, pk: str | int | None, what: str) -> Project:
    """The project behind an owner-only route: 404 for a non-member (nothing tells them it exists), 403 for a
    member who is not an owner."""
    project = get_object_or_404(Project.objects.alive(), pk=_pk(str(pk)))
    require_role(request.user, project, OWNERS, what)
    return project


class ProjectViewSet(viewsets.ModelViewSet):
    """Projects with their taxonomy nested as `choices`. Members read; owners write."""

    serializer_class = ProjectSerializer
    permission_classes = [IsProjectOwnerOrReadOnly]
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        if self.action == "list":
            return Project.objects.for_user(self.request.user).prefetch_related("choices")
        if self.action in LABELING_ACTIONS:
            return Project.objects.alive()  # the hot labeling path needs no taxonomy
        # Detail routes see every live project; the permission answers a non-member 404, as for none.
        return Project.objects.alive().prefetch_related("choices")

    def perform_create(self, serializer: ProjectSerializer) -> None:
        data = dict(serializer.validated_data)
        choices = data.pop("choices")
        serializer.instance = projects.create_project(created_by=self.request.user, fields=data, choices=choices)

    def perform_update(self, serializer: ProjectSerializer) -> None:
        data = dict(serializer.validated_data)
        choices = data.pop("choices", None)
        serializer.instance = projects.update_project(project=serializer.instance, fields=data, choices=choices)

    def perform_destroy(self, instance: Project) -> None:
        projects.soft_delete_project(project=instance)

    @extend_schema(methods=["GET"], responses=MemberSerializer(many=True))
    @extend_schema(methods=["POST"], request=MemberWriteSerializer, responses={201: MemberSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=[IsProjectOwnerOrReadOnly], pagination_class=None)
    def members(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "POST":
            body = MemberWriteSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            membership = projects.add_member(project=project, **body.validated_data)
            return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)
        memberships = project.memberships.select_related("user")
        return Response(MemberSerializer(memberships, many=True).data)

    @extend_schema(request=AccountCreateSerializer, responses={201: AccountSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ProjectPermission])
    def accounts(self, request: Request, pk: str | None = None) -> Response:
        """Create an account with a generated password and add it to the project (owners). The password is in
        this response only; an existing username is refused (409): add that account as a member instead."""
        project = owner_only(request, pk, "create accounts")
        body = AccountCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership, password = accounts.create_account(project=project, **body.validated_data)
        data = {"username": membership.user.username, "role": membership.role, "password": password,
                "login_url": request.build_absolute_uri(reverse("login"))}
        return Response(AccountSerializer(data).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TaskBulkSerializer, responses=TaskBulkResultSerializer)
    @action(detail=True, methods=["post"], url_path="tasks/bulk", permission_classes=[ProjectPermission])
    def tasks_bulk(self, request: Request, pk: str | None = None) -> Response:
        """Cancel, make gold or send back many tasks at once (owners); each task is done or refused on its own."""
        project = owner_only(request, pk, "change tasks")
        body = TaskBulkSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        results = curation.apply_to_tasks(project=project, task_ids=body.validated_data["tasks"],
                                          action=body.validated_data["action"], choice_id=body.validated_data["choice"])
        summary = {s: sum(1 for r in results if r["status"] == s) for s in ("done", "refused")}
        return Response(TaskBulkResultSerializer({"summary": summary, "results": results}).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)", permission_classes=[IsProjectOwner])
    def remove_member(self, request: Request, pk: str | None = None, username: str = "") -> Response:
        project = self.get_object()
        projects.remove_member(project=project, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses=BatchSerializer(many=True))
    @extend_schema(methods=["POST"], request=BatchSerializer, responses={201: BatchSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=[IsProjectOwnerOrReadOnly], pagination_class=None)
    def batches(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "POST":
            body = BatchSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            batch = projects.create_batch(project=project, created_by=request.user, **body.validated_data)
            return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)
        return Response(BatchSerializer(project.batches.alive(), many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=sorted(formats.WRITERS), description="default json")],
        responses=EXPORT_RESPONSES,
    )
    @action(detail=True, methods=["get"], permission_classes=[IsProjectOwner])
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        project = self.get_object()
        fmt = request.query_params.get("format", "json")
        writer = formats.WRITERS.get(fmt)
        if writer is None:
            raise ValidationError({"format": [f"unknown format {fmt!r}; use one of {sorted(formats.WRITERS)}"]})
        batch_id = request.query_params.get("batch")
        rows = formats.task_rows(project=project, base_url=request.build_absolute_uri("/"), batch_id=batch_id)
        response = StreamingHttpResponse(writer.stream(rows), content_type=writer.content_type)
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}.{writer.extension}"'
        return response

    @extend_schema(request=None, responses={200: LeasedTaskSerializer, 204: None})
    @action(detail=True, methods=["post"], url_path="next-task", permission_classes=LABELING_PERMISSIONS)
    def next_task(self, request: Request, pk: str | None = None) -> Response:
        # The service reads the project with the membership in one query (404, 403 as get_object would).
        task = leasing.lease_next_task(project=_pk(pk), annotator=request.user)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeasedTaskSerializer(task, context={"request": request}).data)

    @extend_schema(request=LeaseRequestSerializer, responses=LeasedTaskListSerializer)
    @action(detail=True, methods=["post"], url_path="next-tasks", permission_classes=LABELING_PERMISSIONS)
    def next_tasks(self, request: Request, pk: str | None = None) -> Response:
        """Hold up to `count` leased tasks (your own unanswered leases first) and list them; [] when none is left."""
        body = LeaseRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tasks = leasing.lease_tasks(project=_pk(pk), annotator=request.user, count=body.validated_data["count"])
        return Response({"tasks": LeasedTaskSerializer(tasks, many=True, context={"request": request}).data})

    @extend_schema(request=BulkAnswerSerializer, responses={200: BulkAnswerResultSerializer})
    @action(detail=True, methods=["post"], url_path="annotations/bulk", permission_classes=LABELING_PERMISSIONS)
    def bulk_annotations(self, request: Request, pk: str | None = None) -> Response:
        """Answer many leased tasks at once (grid mode); each item succeeds or fails on its own."""
        project = self.get_object()
        strict.refuse_unknown(request.data, ["answers"])
        items = request.data.get("answers") if isinstance(request.data, dict) else None
        results = answers.submit_answers(project=project, annotator=request.user, answers=items)  # type: ignore[arg-type]
        summary = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "duplicate", "rejected")}
        return Response({"summary": summary, "results": results})

    @extend_schema(request=None, responses={200: ProgressSerializer})
    @action(detail=True, methods=["get"], permission_classes=[IsProjectMember])
    def progress(self, request: Request, pk: str | None = None) -> Response:
        """Open batches' done and remaining tasks and the caller's answer count, for the annotator page."""
        return Response(reports.annotator_progress(project=self.get_object(), annotator=request.user))

    @extend_schema(methods=["GET"], responses=SplitSerializer(many=True))
    @extend_schema(methods=["POST"], request=SplitCreateSerializer, responses={201: SplitSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=[IsProjectOwnerOrReadOnly], pagination_class=None)
    def splits(self, request: Request, pk: str | None = None) -> Response:
        """List the project's domain splits, or build the next version from its accepted batches (owners)."""
        project = self.get_object()
        if request.method == "POST":
            body = SplitCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            split = splits.build_split(project=project, created_by=request.user, **body.validated_data)
            return Response(SplitSerializer(split).data, status=status.HTTP_201_CREATED)
        return Response(SplitSerializer(project.splits.select_related("created_by", "approved_by"), many=True).data)

    @extend_schema(request=None, responses=ProjectSerializer)
    @action(detail=True, methods=["post"], url_path="approve-calibration", permission_classes=[IsProjectOwner])
    def approve_calibration(self, request: Request, pk: str | None = None) -> Response:
        project = projects.approve_calibration(project=self.get_object())
        return Response(ProjectSerializer(project, context={"request": request}).data)


class BatchViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = BatchSerializer
    permission_classes = [IsProjectOwnerOrReadOnly]
    queryset = Batch.objects.alive().select_related("project")

    @extend_schema(request=None, responses=BatchSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner])
    def finalize(self, request: Request, pk: str | None = None) -> Response:
        batch = projects.finalize_batch(batch=self.get_object())
        return Response(BatchSerializer(batch).data)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer, "application/json": UploadSerializer},
        responses={201: IngestResultSerializer(many=True)},
    )
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner],
            parser_classes=[MultiPartParser, FormParser, UrlListJSONParser], pagination_class=None)
    def tasks(self, request: Request, pk: str | None = None) -> Response:
        """Add images: multipart `files` (images or zips), or JSON `{"tasks": [{"image_url", "unique_id", "metadata"}]}`."""
        batch = self.get_object()
        if request.content_type and request.content_type.startswith("application/json"):
            strict.refuse_unknown(request.data, ["tasks"])
            items = request.data.get("tasks") if isinstance(request.data, dict) else None
            if not isinstance(items, list) or not items:
                raise ValidationError({"tasks": ['send a non-empty list: {"tasks": [{"image_url": "https://…"}]}']})
            results = ingest.ingest_urls(batch=batch, items=items)
        else:
            strict.refuse_unknown(request.data, ["files", "file"])
            files = request.FILES.getlist("files") or request.FILES.getlist("file")
            if not files:
                raise ValidationError({"files": ["attach one or more images or zip archives as `files`"]})
            results = ingest.ingest_files(batch=batch, files=[(f.name, f) for f in files])
        summary = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "duplicate", "rejected")}
        return Response({"summary": summary, "items": results}, status=status.HTTP_201_CREATED)


class TaskCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_ordering(self, request: Request, queryset: QuerySet[Task], view: Any) -> tuple[str, ...]:
        if request.query_params.get("ordering") == "label_quality":  # validated by filter_tasks
            return ("quality_order", "id")
        return ("id",)


def filter_tasks(queryset: QuerySet[Task], params: dict[str, str]) -> QuerySet[Task]:
    """Apply the data manager's filters (TaskFilterSerializer); a bad value is a 400 naming the parameter.

    Listings walk a project's tasks in id order (task_project_id_idx) and keep the rows that pass; the
    answer, annotator, audit and duplicate tests are index lookups per row (the annotations' task FK,
    audit_unique_task_round, task_asset_idx), so a page costs about its size in lookups.
    """
    body = TaskFilterSerializer(data={k: v for k, v in params.items() if k in TaskFilterSerializer._declared_fields})
    body.is_valid(raise_exception=True)
    f = body.validated_data
    for name, lookup in (("batch", "batch_id"), ("project", "project_id"), ("status", "status"),
                         ("unique_id", "unique_id"), ("answer", "final_choice_id"), ("agreement_min", "agreement__gte"),
                         ("agreement_max", "agreement__lte"), ("gold", "is_gold")):
        if f.get(name) is not None:
            queryset = queryset.filter(**{lookup: f[name]})
    if f.get("annotator"):
        queryset = queryset.filter(Exists(Annotation.objects.live().filter(
            task=OuterRef("pk"), annotator__username=f["annotator"])))
    audited = f.get("audited")
    if audited:
        audits = Audit.objects.filter(task=OuterRef("pk"))
        if audited in ("pending", "correct", "incorrect"):
            audits = audits.filter(verdict=audited)
        queryset = queryset.exclude(Exists(audits)) if audited == "no" else queryset.filter(Exists(audits))
    if f.get("duplicate") is not None:
        twins = Exists(Task.objects.alive().filter(project_id=OuterRef("project_id"), asset_id=OuterRef("asset_id"))
                       .exclude(pk=OuterRef("pk")))
        queryset = queryset.filter(twins) if f["duplicate"] else queryset.filter(Q(asset__isnull=True) | ~twins)
    if f.get("error"):
        queryset = queryset.filter(status=TaskStatus.FAILED, error__icontains=f["error"])
    if f.get("near_duplicate") is not None:
        near = duplicates.has_near_duplicate()
        queryset = queryset.filter(near) if f["near_duplicate"] else queryset.exclude(near)
    queryset = queryset.filter(label_errors.scored_filter(likely_error=f.get("likely_error"),
                                                          score_max=f.get("label_quality_max")))
    # The cursor orders by this (TaskCursorPagination.get_ordering); unscored tasks sort after every score.
    return queryset.annotate(quality_order=Coalesce("label_quality__score", Value(2.0)))


class TaskViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = TaskSerializer
    permission_classes = [IsProjectMember]
    pagination_class = TaskCursorPagination

    def get_queryset(self) -> QuerySet[Task]:
        if self.action in LABELING_ACTIONS:
            return Task.objects.alive().select_related("asset", "project")  # the hot labeling path
        queryset = Task.objects.alive().select_related("asset", "final_choice", "project", "suggestion__choice",
                                                      "label_quality").prefetch_related(
            Prefetch("annotations", queryset=Annotation.objects.select_related("annotator", "choice"))
        )
        if self.action != "list":
            return queryset
        # Annotators see tasks only through leasing: a listing would show which tasks are gold and
        # how others answered. One filter() call, so user and role match the same membership row.
        queryset = queryset.filter(
            project__memberships__user=self.request.user, project__memberships__role__in=[Role.OWNER, Role.REVIEWER],
            project__deleted_at__isnull=True,
        )
        return filter_tasks(queryset, self.request.query_params.dict())

    @extend_schema(responses=TaskDetailSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One task with its answers (who and when), consensus, gold and every audit of it."""
        task = self.get_object()
        if role_in(request.user, task.project) == Role.ANNOTATOR:
            raise PermissionDenied("annotators see tasks through next-tasks/; a task's details show gold and others' answers")
        task = (Task.objects.select_related("asset", "final_choice", "gold_choice", "batch", "suggestion__choice")
                .prefetch_related(Prefetch("annotations", queryset=Annotation.objects.select_related("annotator", "choice")),
                                  Prefetch("audits", queryset=Audit.objects.select_related("reviewer", "answer", "corrected_choice")))
                .get(pk=task.pk))
        near = duplicates.near_tasks(task)
        return Response(TaskDetailSerializer(task, context={"request": request, "near_duplicates": near}).data)

    @extend_schema(parameters=[TaskFilterSerializer])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=AnswerSerializer, responses={201: AnnotationResultSerializer, 200: AnnotationResultSerializer})
    @action(detail=True, methods=["post"], permission_classes=LABELING_PERMISSIONS)
    def annotations(self, request: Request, pk: str | None = None) -> Response:
        """Answer a leased task. Idempotent: repeating the same answer returns the first (200)."""
        body = AnswerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task_id = _pk(pk)
        # The service reads the task once, under its row lock, and checks membership (404, 403 as get_object would).
        annotation, created = answers.submit_annotation(
            task=task_id, annotator=request.user, choice_id=body.validated_data["choice"],
            duration_ms=body.validated_data["duration_ms"],
        )
        return Response(
            {"id": annotation.pk, "task": task_id, "choice": annotation.choice_id, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={200: SkipResultSerializer})
    @action(detail=True, methods=["post"], permission_classes=LABELING_PERMISSIONS)
    def skip(self, request: Request, pk: str | None = None) -> Response:
        """Give your lease on the task back unanswered; you will not get it again right away."""
        task = leasing.skip_task(task=self.get_object(), annotator=request.user)
        return Response({"task": task.pk, "skipped": True})

    @extend_schema(request=None, responses=LeasedTaskSerializer)
    @action(detail=True, methods=["post"], permission_classes=LABELING_PERMISSIONS)
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw your answer to the task; the task is leased back to you to answer again."""
        task = answers.undo_annotation(task=self.get_object(), annotator=request.user)
        return Response(LeasedTaskSerializer(task, context={"request": request}).data)

    @extend_schema(request=None, responses=LeasedTaskSerializer)
    @action(detail=True, methods=["delete"], url_path="annotations/mine", permission_classes=LABELING_PERMISSIONS)
    def delete_my_annotation(self, request: Request, pk: str | None = None) -> Response:
        """The same as `undo/`, as a DELETE of your own answer."""
        return self.undo(request, pk)

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        task = ingest.cancel_task(task=self.get_object())
        return Response(TaskSerializer(task, context={"request": request}).data)


class SplitViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Frozen domain splits: members read them; owners approve and export."""

    serializer_class = SplitSerializer
    permission_classes = [IsProjectOwnerOrReadOnly]
    queryset = Split.objects.filter(project__deleted_at__isnull=True).select_related("project", "created_by", "approved_by")

    @extend_schema(request=None, responses=SplitSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        split = splits.approve_split(split=self.get_object(), approved_by=request.user)
        return Response(SplitSerializer(split).data)

    @extend_schema(request=None, responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def manifest(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The manifest exactly as stored: its sha256 is the split's `manifest_sha256`."""
        split = self.get_object()
        response = HttpResponse(splits.read_manifest(split), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="split-{split.project_id}-v{split.version}.json"'
        return response

    @extend_schema(request=None, responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], permission_classes=[IsProjectOwner])
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """A zip in ImageFolder layout (A/, B/) with manifest.json, streamed."""
        split = self.get_object()
        response = StreamingHttpResponse(splits.stream_zip(split), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="split-{split.project_id}-v{split.version}.zip"'
        return response

    @extend_schema(request=None, responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="export-cyclegan", permission_classes=[IsProjectOwner])
    def export_cyclegan(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """An approved split as trainA/, trainB/, testA/, testB/ (and valA/, valB/) with manifest.json, streamed."""
        split = self.get_object()
        chunks = formats.stream_cyclegan_zip(split)
        first = next(chunks)  # refuses a draft split now, while a 409 can still be sent
        response = StreamingHttpResponse(itertools.chain([first], chunks), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="split-{split.project_id}-v{split.version}-cyclegan.zip"'
        return response


# --- webhooks and their delivery log (/api/v1/projects/{id}/webhooks/) ---------------------------


class WebhookSerializer(strict.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(max_length=40), max_length=len(webhooks.EVENTS),
                                   help_text=f"some of {list(webhooks.EVENTS)}")

    class Meta:
        model = Webhook
        fields = ["id", "project", "url", "events", "active", "description", "created_at"]
        read_only_fields = ["id", "project", "created_at"]


class WebhookSecretSerializer(strict.Serializer):
    secret = serializers.CharField(help_text="the key; X-Winnow-Signature is HMAC-SHA256 of the body with it")
    standard_secret = serializers.CharField(help_text="the same key as Standard Webhooks libraries take it "
                                            "(whsec_…), to check webhook-id/-timestamp/-signature")
    scale_callback_auth = serializers.CharField(help_text="the scale-callback-auth header of Scale-style callbacks")
    header = serializers.CharField()
    algorithm = serializers.CharField()
    previous_secret_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="after a rotation, deliveries are signed with the previous secret too until then")


class DeliverySerializer(strict.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "webhook", "event", "url", "status", "attempts", "response_code", "last_error",
                  "next_attempt_at", "created_at", "last_attempt_at", "delivered_at", "payload"]
        read_only_fields = fields


class DeliveryPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _owned_project(request: Request, project_pk: str, what: str) -> Project:
    project = get_object_or_404(Project.objects.alive(), pk=project_pk) if project_pk.isdigit() else None
    if project is None:
        raise Http404("no such project")
    require_role(request.user, project, OWNERS, what)
    return project


class WebhookViewSet(viewsets.ViewSet):
    """A project's webhooks (owners only), the signing secret and the log of every delivery."""

    permission_classes = [ProjectPermission]
    lookup_value_regex = r"\d+"

    def _project(self) -> Project:
        return _owned_project(self.request, self.kwargs["project_pk"], "manage webhooks")

    def _webhook(self, pk: str) -> Webhook:
        return get_object_or_404(Webhook, pk=pk, project=self._project())

    @extend_schema(responses=WebhookSerializer(many=True))
    def list(self, request: Request, project_pk: str) -> Response:
        return Response(WebhookSerializer(self._project().webhooks.all(), many=True).data)

    @extend_schema(request=WebhookSerializer, responses={201: WebhookSerializer})
    def create(self, request: Request, project_pk: str) -> Response:
        project = self._project()
        body = WebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook = webhooks.create_webhook(project=project, created_by=request.user, **body.validated_data)
        return Response(WebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=WebhookSerializer)
    def retrieve(self, request: Request, project_pk: str, pk: str) -> Response:
        return Response(WebhookSerializer(self._webhook(pk)).data)

    @extend_schema(request=WebhookSerializer, responses=WebhookSerializer)
    def partial_update(self, request: Request, project_pk: str, pk: str) -> Response:
        webhook = self._webhook(pk)
        body = WebhookSerializer(webhook, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        webhook = webhooks.update_webhook(webhook=webhook, fields=dict(body.validated_data))
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, project_pk: str, pk: str) -> Response:
        self._webhook(pk).delete()  # its deliveries stay in the log
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=WebhookSecretSerializer)
    @action(detail=False, methods=["get", "post"])
    def secret(self, request: Request, project_pk: str) -> Response:
        """GET: the secret that signs this project's deliveries, in both forms. POST: rotate it; the previous
        secret keeps signing too for WEBHOOK_SECRET_GRACE_HOURS (see docs/WEBHOOKS.md)."""
        project = self._project()
        if request.method == "POST":
            project = webhooks.rotate_secret(project=project)
        grace_ends = None
        if len(webhooks.signing_secrets(project)) > 1:
            grace_ends = project.webhook_secret_rotated_at + timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
        return Response(WebhookSecretSerializer({
            "secret": project.webhook_secret,
            "standard_secret": webhooks.standard_secret(project.webhook_secret),
            "scale_callback_auth": webhooks.scale_callback_auth(project.webhook_secret),
            "header": webhooks.SIGNATURE_HEADER,
            "algorithm": "HMAC-SHA256 over the request body, hex, prefixed 'sha256='",
            "previous_secret_valid_until": grace_ends,
        }).data)

    @extend_schema(
        responses=DeliverySerializer(many=True),
        parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values), OpenApiParameter("event", str),
                    OpenApiParameter("webhook", int)],
    )
    @action(detail=False, methods=["get"])
    def deliveries(self, request: Request, project_pk: str) -> Response:
        """Every delivery of the project's events (webhooks and task/batch callbacks), newest first."""
        rows = Delivery.objects.filter(project=self._project())
        params = request.query_params
        if "status" in params:
            if params["status"] not in DeliveryStatus.values:
                raise ValidationError({"status": [f"status must be one of {DeliveryStatus.values}"]})
            rows = rows.filter(status=params["status"])
        if "event" in params:
            rows = rows.filter(event=params["event"])
        if "webhook" in params:
            if not params["webhook"].isdigit():
                raise ValidationError({"webhook": ["webhook must be a webhook id"]})
            rows = rows.filter(webhook_id=int(params["webhook"]))
        paginator = DeliveryPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=False, methods=["post"], url_path=r"deliveries/(?P<delivery_id>\d+)/redeliver")
    def redeliver(self, request: Request, project_pk: str, delivery_id: str) -> Response:
        """Send a delivered or failed delivery's payload again, as a new delivery."""
        delivery = get_object_or_404(Delivery, pk=delivery_id, project=self._project())
        copy = webhooks.redeliver(delivery=delivery)
        return Response(DeliverySerializer(copy).data, status=status.HTTP_202_ACCEPTED)


# --- exports written by a worker (/api/v1/projects/{id}/exports/) --------------------------------


class ExportRequestSerializer(strict.Serializer):
    format = serializers.ChoiceField(choices=sorted(exports.EXPORT_FORMATS))
    batch = serializers.IntegerField(required=False, allow_null=True, help_text="only this batch's tasks")
    split = serializers.IntegerField(required=False, allow_null=True, help_text="the approved split (cyclegan format)")


class ExportSerializer(strict.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    download_url = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                           help_text="when the file is deleted (EXPORT_RETENTION_HOURS); null: not "
                                                     "written yet, or kept")

    class Meta:
        model = Export
        fields = ["id", "project", "batch", "split", "format", "status", "progress", "rows_done", "rows_total",
                  "byte_size", "error", "created_at", "started_at", "finished_at", "expires_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        if export.status != ExportStatus.DONE:
            return None
        url = f"/api/v1/projects/{export.project_id}/exports/{export.pk}/download/"
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class ExportViewSet(viewsets.ViewSet):
    """Large exports: queue one, poll its progress, download the file when it is done (owners only)."""

    permission_classes = [ProjectPermission]
    lookup_value_regex = r"\d+"

    def _project(self) -> Project:
        return _owned_project(self.request, self.kwargs["project_pk"], "export")

    def _export(self, pk: str) -> Export:
        return get_object_or_404(Export, pk=pk, project=self._project())

    @extend_schema(responses=ExportSerializer(many=True))
    def list(self, request: Request, project_pk: str) -> Response:
        rows = self._project().exports.order_by("-id")[:100]
        return Response(ExportSerializer(rows, many=True, context={"request": request}).data)

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportSerializer})
    def create(self, request: Request, project_pk: str) -> Response:
        project = self._project()
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        batch = split = None
        if body.validated_data.get("batch") is not None:
            batch = get_object_or_404(Batch.objects.alive(), pk=body.validated_data["batch"], project=project)
        if body.validated_data.get("split") is not None:
            split = get_object_or_404(Split, pk=body.validated_data["split"], project=project)
        export = exports.start_export(project=project, fmt=body.validated_data["format"], batch=batch, split=split,
                                      requested_by=request.user)
        return Response(ExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=ExportSerializer)
    def retrieve(self, request: Request, project_pk: str, pk: str) -> Response:
        return Response(ExportSerializer(self._export(pk), context={"request": request}).data)

    @extend_schema(responses=EXPORT_RESPONSES)
    @action(detail=True, methods=["get"])
    def download(self, request: Request, project_pk: str, pk: str) -> FileResponse:
        export = self._export(pk)
        if export.status == ExportStatus.EXPIRED:
            raise Conflict(f"the export's file was deleted {settings.EXPORT_RETENTION_HOURS} h after it was written; "
                           "start a new export", code="expired")
        if export.status != ExportStatus.DONE:
            raise Conflict(f"the export is {export.status}; download it once its status is done", code="not_ready")
        name = f"project-{export.project_id}-export-{export.pk}.{exports.extension_of(export.format)}"
        try:
            return storage.file_response(export.file, attachment=name,
                                         content_type=exports.content_type_of(export.format))
        except FileNotFoundError:
            raise Conflict("the export's file is gone; start a new export", code="file_missing") from None
