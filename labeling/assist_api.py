"""REST API of model assistance (docs/ASSIST.md): suggested grid pages, look-alikes, the embedding job and
the suggestion model's accuracy estimate. Thin views: resolve, authorise, call one domain function, render.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from winnow import serializers as strict

from . import assist, features, leasing, suggestions
from .api import LeasedTaskSerializer
from .models import Project, Task
from .permissions import OWNERS, REVIEWERS, require_role
from .serializers import SuggestionSerializer, media_url


class SuggestedPageRequestSerializer(strict.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=leasing.MAX_LEASED_TASKS, default=48)
    choice = serializers.IntegerField(required=False, allow_null=True, default=None,
                                      help_text="the suggested choice the page shares (default: the one with most)")
    like = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                    help_text="instead: look-alikes of this task, nearest first (more like this)")


class SuggestedTaskSerializer(LeasedTaskSerializer):
    """A leased task with the suggestion the page shows for it."""

    suggestion = SuggestionSerializer(allow_null=True)

    class Meta(LeasedTaskSerializer.Meta):
        fields = [*LeasedTaskSerializer.Meta.fields, "suggestion"]
        read_only_fields = fields


class SuggestedPageSerializer(strict.Serializer):
    choice = serializers.IntegerField(allow_null=True, help_text="the choice every task of the page is suggested")
    label = serializers.CharField(allow_null=True)
    tasks = SuggestedTaskSerializer(many=True)


class SimilarRowSerializer(strict.Serializer):
    task = serializers.IntegerField()
    distance = serializers.FloatField(help_text="cosine distance of the embeddings (0: the same)")
    status = serializers.CharField()
    answer = serializers.CharField(allow_null=True)
    suggestion = SuggestionSerializer(allow_null=True)
    thumbnail_url = serializers.CharField(allow_null=True)


class SimilarSerializer(strict.Serializer):
    task = serializers.IntegerField()
    similar = SimilarRowSerializer(many=True)


class SimilarQuerySerializer(strict.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=100, default=12)


class FeatureJobSerializer(strict.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    retrain = serializers.BooleanField()
    trained = serializers.BooleanField()
    assets_done = serializers.IntegerField()
    assets_total = serializers.IntegerField()
    progress = serializers.FloatField()
    labels_used = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    train_seconds = serializers.FloatField(allow_null=True)
    embed_seconds = serializers.FloatField(allow_null=True)


class EmbeddingStatusSerializer(strict.Serializer):
    enabled = serializers.BooleanField(help_text="WINNOW_ASSIST: embeddings are computed after each upload")
    kind = serializers.CharField(help_text="rotation-cnn (trained on the project's images) or backbone")
    version = serializers.IntegerField(allow_null=True)
    images = serializers.IntegerField()
    embedded = serializers.IntegerField()
    vector_index = serializers.BooleanField(help_text="pgvector's HNSW index (else an exact scan)")
    job = FeatureJobSerializer(allow_null=True)


class AccuracyEstimateSerializer(strict.Serializer):
    fitted_at = serializers.DateTimeField(allow_null=True)
    feature_version = serializers.IntegerField(allow_null=True)
    gold = serializers.IntegerField(help_text="gold tasks learned from")
    accepted = serializers.IntegerField(help_text="answered non-gold tasks learned from")
    heldout = serializers.IntegerField(help_text="gold predicted by a model that did not learn from it")
    heldout_correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2,
                                     help_text="Wilson 95% interval of the accuracy")
    temperature = serializers.FloatField(allow_null=True)
    suggested = serializers.IntegerField(help_text="queued tasks with a suggestion")
    job_status = serializers.CharField(allow_null=True)
    job_error = serializers.CharField(allow_blank=True)


class AssistStatusSerializer(strict.Serializer):
    embeddings = EmbeddingStatusSerializer()
    suggestions = AccuracyEstimateSerializer()


class EmbeddingRequestSerializer(strict.Serializer):
    retrain = serializers.BooleanField(default=False, help_text="train a new feature model on the images and "
                                       "answers there are now")


def _project(pk: int) -> Project:
    return get_object_or_404(Project.objects.alive(), pk=pk)


def _rows(request: Request, page: dict[str, Any]) -> dict[str, Any]:
    tasks = []
    for task, suggestion in page["tasks"]:
        data = LeasedTaskSerializer(task, context={"request": request}).data
        data["suggestion"] = suggestion
        tasks.append(data)
    return {"choice": page["choice"], "label": page["label"], "tasks": tasks}


@extend_schema(request=SuggestedPageRequestSerializer, responses=SuggestedPageSerializer)
@api_view(["POST"])
def suggested_tasks(request: Request, pk: int) -> Response:
    """Lease a suggested grid page: tasks sharing one suggested choice, most confident first, trap gold mixed
    in; or, with `like`, the look-alikes of a task. Answer them with annotations/bulk/ (`assisted: true`)."""
    project = _project(pk)
    body = SuggestedPageRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    page = assist.suggested_page(project=project, annotator=request.user, count=data["count"], choice_id=data["choice"],
                                 like=data["like"])
    return Response(_rows(request, page))


@extend_schema(parameters=[OpenApiParameter("k", int, description="how many (1-100, default 12)")],
               responses=SimilarSerializer)
@api_view(["GET"])
def similar(request: Request, pk: int) -> Response:
    """The task's nearest neighbours by image embedding (owners and reviewers; annotators get look-alikes as
    leases, through suggested-tasks/ with `like`). 409 while the image has no embedding yet."""
    task = get_object_or_404(Task.objects.alive().select_related("project", "asset"), pk=pk)
    require_role(request.user, task.project, REVIEWERS, "see look-alikes of a task (annotators: use more like this "
                 "in the grid)")
    query = SimilarQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    rows = assist.similar_tasks(task=task, k=query.validated_data["k"])
    tasks = {t.pk: t for t in Task.objects.filter(pk__in=[r["task"] for r in rows]).select_related("asset", "final_choice")}
    suggested = suggestions.suggestions_of(list(tasks))
    return Response({"task": task.pk, "similar": [
        {"task": r["task"], "distance": r["distance"], "status": tasks[r["task"]].status,
         "answer": tasks[r["task"]].final_choice.label if tasks[r["task"]].final_choice else None,
         "suggestion": suggested.get(r["task"]),
         "thumbnail_url": media_url(request, tasks[r["task"]].asset.thumbnail.name) if tasks[r["task"]].asset else None}
        for r in rows]})


@extend_schema(methods=["GET"], responses=AssistStatusSerializer)
@extend_schema(methods=["POST"], request=EmbeddingRequestSerializer, responses={202: AssistStatusSerializer})
@api_view(["GET", "POST"])
def assist_status(request: Request, pk: int) -> Response:
    """GET: the embedding job's progress and the suggestion model's accuracy on held-out gold (owners and
    reviewers). POST: queue the embedding job now, `retrain` to train a new feature model (owners)."""
    project = _project(pk)
    if request.method == "POST":
        require_role(request.user, project, OWNERS, "compute embeddings")
        body = EmbeddingRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        features.schedule(project_id=project.pk, retrain=body.validated_data["retrain"], countdown=0)
    else:
        require_role(request.user, project, REVIEWERS, "read the suggestion model's figures")
    data = {"embeddings": features.status(project), "suggestions": suggestions.accuracy_estimate(project)}
    return Response(AssistStatusSerializer(data).data,
                    status=status.HTTP_202_ACCEPTED if request.method == "POST" else status.HTTP_200_OK)


urlpatterns = [
    path("projects/<int:pk>/suggested-tasks/", suggested_tasks, name="project-suggested-tasks"),
    path("projects/<int:pk>/assist/", assist_status, name="project-assist"),
    path("tasks/<int:pk>/similar/", similar, name="task-similar"),
]
