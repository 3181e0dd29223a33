"""Serializers validate and shape; they never call domain code."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers
from rest_framework.settings import api_settings

from labeling.models import Split
from winnow import serializers as strict

from .cyclegan.config import ConfigError, CycleGANConfig, Knob, knobs
from .models import Augmentation, Checkpoint, Evaluation, MetricPoint, Run, Sample


def config_field(spec: Knob) -> serializers.Field:
    """The API field of one config knob: its type, bounds and help come from training/cyclegan/config.py."""
    common: dict[str, Any] = {"required": False, "allow_null": spec.nullable, "help_text": spec.help}
    if spec.kind is bool:
        return serializers.BooleanField(**common)
    if spec.choices is not None:
        return serializers.ChoiceField(choices=list(spec.choices), **common)
    number = serializers.IntegerField if spec.kind is int else serializers.FloatField
    return number(min_value=spec.min, max_value=spec.max, **common)


class RunConfigSerializer(strict.Serializer):
    """What a run may set: every knob of `CycleGANConfig` an API request may set, with the bounds the
    config declares. Anything left out takes the paper's default. The config itself has the last
    word: what it refuses (values wrong together) comes back as a 400 naming the field."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: config_field(spec) for name, spec in knobs() if spec.api}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError('config must be an object, e.g. {"image_size": 128, "epochs": 10}')
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields)
            raise serializers.ValidationError({key: [f"unknown config key; known keys are {known}"] for key in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            CycleGANConfig(**attrs)
        except ConfigError as exc:
            raise serializers.ValidationError({exc.field or api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]}) from exc
        return attrs


class RunCreateSerializer(strict.Serializer):
    split = serializers.PrimaryKeyRelatedField(queryset=Split.objects.none())
    config = RunConfigSerializer(required=False, default=dict)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        # Only splits of the caller's projects: another project's split id reads as unknown.
        if request is not None:
            self.fields["split"].queryset = Split.objects.filter(  # type: ignore[attr-defined]
                project__memberships__user=request.user, project__deleted_at__isnull=True
            ).select_related("project")


class CheckpointSerializer(strict.ModelSerializer):
    weights_url = serializers.SerializerMethodField()

    class Meta:
        model = Checkpoint
        fields = ["id", "step", "byte_size", "created_at", "deleted_at", "weights_url"]
        read_only_fields = fields

    def get_weights_url(self, checkpoint: Checkpoint) -> str | None:
        if checkpoint.deleted_at is not None:
            return None
        return reverse("training-api:run-weights", args=[checkpoint.run_id]) + f"?checkpoint={checkpoint.pk}"


class SampleSerializer(strict.ModelSerializer):
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Sample
        fields = ["id", "step", "created_at", "image_url"]
        read_only_fields = fields

    def get_image_url(self, sample: Sample) -> str:
        return reverse("training-api:run-sample", args=[sample.run_id, sample.step])


class MetricPointSerializer(strict.ModelSerializer):
    class Meta:
        model = MetricPoint
        fields = ["step", "epoch", "lr", "images_per_s", "losses"]
        read_only_fields = fields


class RunSerializer(strict.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.FloatField(read_only=True)
    eta_seconds = serializers.SerializerMethodField()
    split_version = serializers.IntegerField(source="split.version", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "project", "split", "split_version", "status", "config", "requested_by", "created_at",
            "started_at", "finished_at", "heartbeat_at", "attempts", "history", "cancel_requested_at", "step",
            "total_steps", "epoch", "progress", "eta_seconds", "images_per_s", "elapsed_s", "stop_reason", "error",
        ]
        read_only_fields = fields

    def get_eta_seconds(self, run: Run) -> float | None:
        return run.eta_seconds()


class RunDetailSerializer(RunSerializer):
    checkpoints = CheckpointSerializer(many=True, read_only=True)
    samples = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "checkpoints", "samples"]
        read_only_fields = fields

    def get_samples(self, run: Run) -> list[dict[str, Any]]:
        """The newest grids first (a page shows the latest few)."""
        return SampleSerializer(run.samples.order_by("-step")[:12], many=True).data


class TranslateSerializer(strict.Serializer):
    image = serializers.ImageField(help_text="the image to translate")
    direction = serializers.ChoiceField(choices=["AB", "BA"], help_text="AB: A to B; BA: B to A")
    checkpoint = serializers.IntegerField(required=False, allow_null=True, help_text="default: the newest")


class AugmentRequestSerializer(strict.Serializer):
    count = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                     help_text="default: the difference between the domains' train counts")
    direction = serializers.ChoiceField(choices=["AB", "BA"], required=False, allow_null=True,
                                        help_text="default: majority domain to minority domain")
    checkpoint = serializers.IntegerField(required=False, allow_null=True, help_text="default: the newest")


class AugmentationSerializer(strict.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    checkpoint_step = serializers.IntegerField(source="checkpoint.step", read_only=True)

    class Meta:
        model = Augmentation
        fields = ["id", "run", "checkpoint", "checkpoint_step", "direction", "count", "produced", "status", "error",
                  "created_at", "finished_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, augmentation: Augmentation) -> str | None:
        if not augmentation.file:
            return None
        return reverse("training-api:augmentation-download", args=[augmentation.pk])


class KnownMappingParamsSerializer(strict.Serializer):
    """The known-mapping data set the run was trained on (as make_benchmark_dataset made it)."""

    size = serializers.IntegerField(min_value=16, max_value=512, required=False, help_text="default: the run's image_size")
    n_a = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    n_b = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    n_test = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    filter = serializers.CharField(max_length=50, required=False)
    max_scale = serializers.FloatField(min_value=1, max_value=8, required=False)


class ClassifierParamsSerializer(strict.Serializer):
    seeds = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=2**31 - 1), min_length=1,
                                  max_length=20, required=False, help_text="one classifier pair per seed (default 0, 1, 2)")
    epochs = serializers.IntegerField(min_value=1, max_value=500, required=False)
    size = serializers.IntegerField(min_value=16, max_value=256, required=False)
    imbalance = serializers.FloatField(min_value=1, max_value=1000, required=False, allow_null=True,
                                       help_text="keep one minority image per this many majority ones")


class EvaluationCreateSerializer(strict.Serializer):
    run = serializers.PrimaryKeyRelatedField(queryset=Run.objects.none())
    checkpoint = serializers.IntegerField(required=False, allow_null=True, help_text="default: the newest")
    metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=["fid_kid", "known_mapping", "classifier"]), required=False,
        help_text="default: fid_kid (when the Inception weights are configured), classifier, and known_mapping if given",
    )
    known_mapping = KnownMappingParamsSerializer(required=False, allow_null=True)
    classifier = ClassifierParamsSerializer(required=False)
    max_images = serializers.IntegerField(min_value=2, max_value=50_000, required=False,
                                          help_text="images read per domain and partition (default 500)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        # Only runs of the caller's projects: another project's run id reads as unknown.
        if request is not None:
            self.fields["run"].queryset = Run.objects.filter(  # type: ignore[attr-defined]
                project__memberships__user=request.user, project__deleted_at__isnull=True
            ).select_related("project")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "known_mapping" in attrs.get("metrics", []) and attrs.get("known_mapping") is None:
            raise serializers.ValidationError({"known_mapping": ["give the data set's parameters (size, n_a, n_b, "
                                                                 "n_test, seed, filter) to score known_mapping"]})
        return attrs


class EvaluationSerializer(strict.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    project = serializers.IntegerField(source="run.project_id", read_only=True)
    headline = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = ["id", "run", "project", "checkpoint", "step", "status", "progress", "config", "results", "headline",
                  "error", "requested_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_headline(self, evaluation: Evaluation) -> dict[str, Any]:
        from .evaluations import headline

        return headline(evaluation)
