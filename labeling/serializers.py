"""Serializers validate and shape; they never call services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from winnow import serializers as strict

from .models import Annotation, Asset, Batch, BatchKind, Choice, Domain, Membership, Project, Role, Task

# Keys the annotator page keeps for itself: skip, undo, show hints.
RESERVED_HOTKEYS = {"s", "u", "?", " "}


def media_url(request: Any, name: str) -> str:
    url = f"{settings.MEDIA_URL}{name}"
    if not url.startswith("/"):
        url = "/" + url
    return request.build_absolute_uri(url) if request is not None else url


class ChoiceSerializer(strict.ModelSerializer):
    id = serializers.IntegerField(required=False)
    domain = serializers.ChoiceField(
        choices=Domain.choices,
        error_messages={"invalid_choice": "domain must be one of A, B or excluded, not {input!r}"},
    )

    class Meta:
        model = Choice
        fields = ["id", "label", "description", "long_hint", "hotkey", "domain", "order"]
        read_only_fields = ["order"]
        # Uniqueness is checked across the whole taxonomy in ProjectSerializer.validate_choices.
        validators: list[Any] = []

    def validate_hotkey(self, value: str) -> str:
        if len(value) != 1 or not value.isprintable():
            raise serializers.ValidationError("hotkey must be a single printable character, such as 1 or a")
        if value.lower() in RESERVED_HOTKEYS:
            raise serializers.ValidationError(
                f"{value!r} is reserved by the annotator page (s skips, u undoes, ? shows hints); choose another key"
            )
        return value.lower()

    def validate_label(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("label may not be blank")
        return value


class ProjectSerializer(strict.ModelSerializer):
    choices = ChoiceSerializer(many=True, required=False)
    role = serializers.SerializerMethodField()
    calibration_approved = serializers.BooleanField(read_only=True)

    class Meta:
        model = Project
        fields = [
            "id", "name", "instructions", "question", "overlap", "gold_rate", "audit_sample_size",
            "max_error_rate", "min_gold_accuracy", "min_gold_answers", "lease_seconds",
            "calibration_approved", "calibration_approved_at", "created_at", "updated_at", "role", "choices",
        ]
        read_only_fields = ["calibration_approved_at", "created_at", "updated_at"]

    def get_role(self, project: Project) -> str | None:
        request = self.context.get("request")
        return project.role_of(request.user) if request else None

    def validate_overlap(self, value: int) -> int:
        if not 1 <= value <= 10:
            raise serializers.ValidationError("overlap must be between 1 and 10 annotators per task")
        return value

    def validate_gold_rate(self, value: float) -> float:
        if not 0 <= value <= 0.5:
            raise serializers.ValidationError("gold_rate must be between 0 and 0.5 (a share of production tasks)")
        return value

    def validate_max_error_rate(self, value: float) -> float:
        if not 0 < value < 1:
            raise serializers.ValidationError("max_error_rate must be between 0 and 1, e.g. 0.02 for 2%")
        return value

    def validate_min_gold_accuracy(self, value: float) -> float:
        if not 0 <= value <= 1:
            raise serializers.ValidationError("min_gold_accuracy must be between 0 and 1")
        return value

    def validate_lease_seconds(self, value: int) -> int:
        if not 5 <= value <= 24 * 3600:
            raise serializers.ValidationError("lease_seconds must be between 5 and 86400")
        return value

    def validate_audit_sample_size(self, value: int) -> int:
        if not 1 <= value <= 100_000:
            raise serializers.ValidationError("audit_sample_size must be between 1 and 100000")
        return value

    def validate_choices(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) < 2:
            raise serializers.ValidationError("the taxonomy needs at least two choices")
        for field in ("hotkey", "label"):
            seen: dict[str, str] = {}
            for choice in value:
                key = choice[field].lower()
                if key in seen:
                    raise serializers.ValidationError(
                        f"{field} {choice[field]!r} is used by both {seen[key]!r} and {choice['label']!r}; "
                        f"each choice needs its own {field}"
                    )
                seen[key] = choice["label"]
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and "choices" not in attrs:
            raise serializers.ValidationError({"choices": ["a project needs its taxonomy: at least two choices"]})
        return attrs

    def to_representation(self, instance: Project) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["choices"] = ChoiceSerializer(instance.choices.all(), many=True).data
        return data


class MemberSerializer(strict.ModelSerializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Role.choices)
    paused = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["username", "role", "paused", "paused_reason", "created_at"]
        read_only_fields = ["paused_reason", "created_at"]

    def get_paused(self, membership: Membership) -> bool:
        return membership.paused_at is not None


class BatchSerializer(strict.ModelSerializer):
    kind = serializers.ChoiceField(choices=BatchKind.choices, default=BatchKind.PRODUCTION)
    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id", "project", "name", "kind", "status", "callback_url", "created_at", "finalized_at",
            "labeled_at", "decided_at", "counts", "progress",
        ]
        read_only_fields = ["project", "status", "created_at", "finalized_at", "labeled_at", "decided_at"]

    def get_counts(self, batch: Batch) -> dict[str, int]:
        return batch.counts()

    def get_progress(self, batch: Batch) -> float:
        return round(batch.progress(), 4)


class AssetSerializer(strict.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = ["sha256", "width", "height", "format", "byte_size", "image_url", "thumbnail_url"]

    def get_image_url(self, asset: Asset) -> str:
        return media_url(self.context.get("request"), asset.file.name)

    def get_thumbnail_url(self, asset: Asset) -> str:
        return media_url(self.context.get("request"), asset.thumbnail.name)


class AnnotationSerializer(strict.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    choice_label = serializers.CharField(source="choice.label", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "task", "annotator", "choice", "choice_label", "duration_ms", "created_at"]
        read_only_fields = fields


class TaskSerializer(strict.ModelSerializer):
    asset = AssetSerializer(read_only=True)
    answer = serializers.CharField(source="final_choice.label", default=None, read_only=True)
    annotations = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id", "project", "batch", "unique_id", "status", "error", "metadata", "source_url", "source_name",
            "asset", "annotation_count", "answer", "final_choice", "decided_by", "agreement", "is_gold",
            "created_at", "completed_at", "annotations",
        ]
        read_only_fields = fields

    def get_annotations(self, task: Task) -> list[dict[str, Any]]:
        live = [a for a in task.annotations.all() if a.discarded_at is None]
        return AnnotationSerializer(live, many=True).data


class UrlTaskSerializer(strict.Serializer):
    """Documents the JSON shape of URL uploads; items are checked one by one in the service."""

    image_url = serializers.URLField()
    unique_id = serializers.CharField(required=False, max_length=255)
    metadata = serializers.DictField(required=False)


class UploadSerializer(strict.Serializer):
    tasks = UrlTaskSerializer(many=True, required=False)
    files = serializers.ListField(child=serializers.FileField(), required=False)


class IngestResultSerializer(strict.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    task_id = serializers.IntegerField(required=False)
    reason = serializers.CharField(required=False)


class AnswerSerializer(strict.Serializer):
    choice = serializers.IntegerField()
    duration_ms = serializers.IntegerField(min_value=0, default=0)


class MemberWriteSerializer(strict.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
