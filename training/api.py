"""REST API for training (/api/v1/runs/, /api/v1/augmentations/). Views parse, authorise, call one service."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.models import Project
from labeling.permissions import MEMBERS, OWNERS, IsProjectOwner, IsProjectOwnerOrReadOnly, require_role
from winnow import storage
from winnow.parsers import JSONParser

from . import evaluations, runs, use
from .models import Augmentation, Evaluation, Run
from .serializers import (
    AugmentationSerializer,
    AugmentRequestSerializer,
    EvaluationCreateSerializer,
    EvaluationSerializer,
    MetricPointSerializer,
    RunCreateSerializer,
    RunDetailSerializer,
    RunSerializer,
    TranslateSerializer,
)

MAX_METRIC_POINTS = 5000


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValidationError({name: [f"{name} must be a whole number"]})
    return int(raw)


def _file_response(name: str, content_type: str, filename: str | None = None) -> FileResponse:
    try:
        response = storage.file_response(name, content_type=content_type, attachment=filename)
    except (FileNotFoundError, ValueError):  # ValueError: no name (nothing was written)
        raise NotFound("that file is no longer stored") from None
    response["Cache-Control"] = "private, max-age=3600"
    return response


class RunViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """CycleGAN runs. Members of the project read them; owners start, cancel, resume and use them."""

    permission_classes = [IsProjectOwnerOrReadOnly]

    def get_queryset(self) -> QuerySet[Run]:
        queryset = Run.objects.filter(project__deleted_at__isnull=True).select_related("split", "requested_by")
        if self.action != "list":
            # Every live run, so a non-member gets a clear 403 from the permission, not a 404.
            return queryset.prefetch_related("checkpoints")
        queryset = queryset.filter(project__memberships__user=self.request.user)
        for name in ("project", "split"):
            value = _int_param(self.request, name)
            if value is not None:
                queryset = queryset.filter(**{f"{name}_id": value})
        return queryset

    def get_serializer_class(self) -> type:
        if self.action == "create":
            return RunCreateSerializer
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    @extend_schema(request=RunCreateSerializer, responses={201: RunDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a run on an approved split: {"split": id, "config": {"image_size": 128, …}}."""
        body = RunCreateSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        split = body.validated_data["split"]
        require_role(request.user, split.project, OWNERS, "start training runs")
        run = runs.start_run(split=split, config=body.validated_data["config"], requested_by=request.user)
        return Response(RunDetailSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("project", int), OpenApiParameter("split", int)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = runs.cancel_run(run=self.get_object())
        return Response(RunDetailSerializer(run).data)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Queue a cancelled or failed run again; it continues from its last checkpoint."""
        run = runs.resume_run(run=self.get_object())
        return Response(RunDetailSerializer(run).data)

    @extend_schema(parameters=[OpenApiParameter("after", int, description="only steps after this one")],
                   responses=MetricPointSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # capped, not paginated: the schema says a list
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        """Loss curves, lr and speed by step; poll with `after` = the last step you have."""
        run = self.get_object()
        points = run.metrics.filter(step__gt=_int_param(request, "after") or 0).order_by("step")[:MAX_METRIC_POINTS]
        return Response(MetricPointSerializer(points, many=True).data)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"], url_path=r"samples/(?P<step>\d+)")
    def sample(self, request: Request, pk: str | None = None, step: str = "") -> FileResponse:
        sample = self.get_object().samples.filter(step=int(step)).first()
        if sample is None:
            raise NotFound(f"run {pk} has no sample grid at step {step}")
        return _file_response(sample.image.name, "image/png")

    @extend_schema(parameters=[OpenApiParameter("checkpoint", int, description="default: the newest")],
                   responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"], permission_classes=[IsProjectOwner])
    def weights(self, request: Request, pk: str | None = None) -> FileResponse:
        """Both generators and the config of a checkpoint, as a torch file (load with `load_generator`)."""
        run = self.get_object()
        checkpoint = use.pick_checkpoint(run=run, checkpoint_id=_int_param(request, "checkpoint"))
        name = use.export_weights(checkpoint=checkpoint)
        return _file_response(name, "application/octet-stream", f"run-{run.pk}-step-{checkpoint.step}-generators.pt")

    @extend_schema(request={"multipart/form-data": TranslateSerializer}, responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["post"], permission_classes=[IsProjectOwner], parser_classes=[MultiPartParser, FormParser])
    def translate(self, request: Request, pk: str | None = None) -> HttpResponse:
        """Translate an uploaded image A->B or B->A; the answer is the PNG, the input's size."""
        run = self.get_object()
        body = TranslateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["image"]
        upload.seek(0)
        data, checkpoint, resized = use.translate_image(
            run=run, file=upload, direction=body.validated_data["direction"],
            checkpoint_id=body.validated_data.get("checkpoint"),
        )
        response = HttpResponse(data, content_type="image/png")
        response["X-Winnow-Checkpoint-Step"] = str(checkpoint.step)
        response["X-Winnow-Resized"] = "1" if resized else "0"
        return response

    @extend_schema(request=AugmentRequestSerializer, responses={202: AugmentationSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=[IsProjectOwner],
            parser_classes=[JSONParser, FormParser, MultiPartParser])
    def augmentations(self, request: Request, pk: str | None = None) -> Response:
        """List the run's augmentations, or queue one: N synthetic images of the minority domain."""
        run = self.get_object()
        if request.method == "GET":
            return Response(AugmentationSerializer(run.augmentations.select_related("checkpoint"), many=True).data)
        body = AugmentRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        augmentation = use.start_augmentation(
            run=run, requested_by=request.user, count=body.validated_data.get("count"),
            direction=body.validated_data.get("direction"), checkpoint_id=body.validated_data.get("checkpoint"),
        )
        return Response(AugmentationSerializer(augmentation).data, status=status.HTTP_202_ACCEPTED)


class AugmentationViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AugmentationSerializer
    permission_classes = [IsProjectOwner]
    queryset = Augmentation.objects.filter(run__project__deleted_at__isnull=True).select_related("run__project", "checkpoint")

    @extend_schema(responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        """The zip: <domain>/synthetic-*.png and manifest.json marking every file synthetic."""
        augmentation = self.get_object()
        if not augmentation.file:
            raise NotFound(f"augmentation {augmentation.pk} is {augmentation.status}; download it once it has succeeded")
        return _file_response(augmentation.file.name, "application/zip", f"augmentation-{augmentation.pk}.zip")


class EvaluationViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    """Evaluations of runs: FID/KID, known-mapping PSNR/SSIM, classifier gain. Members read; owners start."""

    serializer_class = EvaluationSerializer
    permission_classes = [IsProjectOwnerOrReadOnly]

    def get_queryset(self) -> QuerySet[Evaluation]:
        queryset = Evaluation.objects.filter(run__project__deleted_at__isnull=True).select_related(
            "run__project", "requested_by")
        if self.action != "list":
            return queryset
        queryset = queryset.filter(run__project__memberships__user=self.request.user)
        for name, field in (("run", "run_id"), ("project", "run__project_id")):
            value = _int_param(self.request, name)
            if value is not None:
                queryset = queryset.filter(**{field: value})
        return queryset

    @extend_schema(parameters=[OpenApiParameter("run", int), OpenApiParameter("project", int)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=EvaluationCreateSerializer, responses={202: EvaluationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Queue an evaluation of a run's checkpoint: {"run": id, "metrics": ["classifier"], …}."""
        body = EvaluationCreateSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        run = data.pop("run")
        require_role(request.user, run.project, OWNERS, "evaluate runs")
        evaluation = evaluations.start_evaluation(run=run, config=data, requested_by=request.user,
                                                  checkpoint_id=data.pop("checkpoint", None))
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[OpenApiParameter("project", int, required=True)])
    @action(detail=False, methods=["get"])
    def compare(self, request: Request) -> Response:
        """One row per run of a project with its newest evaluation's headline numbers."""
        project_id = _int_param(request, "project")
        if project_id is None:
            raise ValidationError({"project": ["give the project id: ?project=ID"]})
        project = Project.objects.filter(pk=project_id, deleted_at__isnull=True).first()
        if project is None:
            raise NotFound(f"project {project_id} does not exist")
        require_role(request.user, project, MEMBERS, "compare runs")
        return Response(evaluations.compare_runs(project=project))
