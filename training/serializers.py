"""Serializers validate and shape; they never call domain code."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from labeling.models import Split
from winnow import serializers as strict

from .models import Augmentation, Checkpoint, Evaluation, MetricPoint, Run, Sample

PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
UPSAMPLES = ["transpose", "resize"]  # training.cyclegan.model.UPSAMPLES, without importing torch here


class RunConfigSerializer(strict.Serializer):
    """What a run may set. Anything left out takes the paper's default (see training/cyclegan/model.py)."""

    image_size = serializers.IntegerField(min_value=16, max_value=1024, required=False,
                                          help_text="crop size in pixels, a multiple of 4 (default 256)")
    load_size = serializers.IntegerField(min_value=16, max_value=2048, required=False, allow_null=True,
                                         help_text="resize before the random crop (default image_size * 286 / 256)")
    flip = serializers.BooleanField(required=False)
    epochs = serializers.IntegerField(min_value=0, max_value=10_000, required=False,
                                      help_text="epochs at the constant learning rate (default 100)")
    decay_epochs = serializers.IntegerField(min_value=0, max_value=10_000, required=False,
                                            help_text="epochs of linear decay to 0 (default 100)")
    batch_size = serializers.IntegerField(min_value=1, max_value=256, required=False)
    lr = serializers.FloatField(min_value=1e-7, max_value=0.1, required=False)
    beta1 = serializers.FloatField(min_value=0, max_value=0.999, required=False)
    beta2 = serializers.FloatField(min_value=0, max_value=0.9999, required=False)
    lambda_cycle = serializers.FloatField(min_value=0, max_value=1000, required=False)
    lambda_identity = serializers.FloatField(min_value=0, max_value=100, required=False)
    n_blocks = serializers.IntegerField(min_value=1, max_value=32, required=False, allow_null=True,
                                        help_text="residual blocks (default 9, or 6 for image_size <= 128)")
    ngf = serializers.IntegerField(min_value=1, max_value=256, required=False)
    ndf = serializers.IntegerField(min_value=1, max_value=256, required=False)
    n_layers_d = serializers.IntegerField(min_value=1, max_value=6, required=False)
    residual = serializers.BooleanField(required=False,
                                        help_text="generators predict a change to their input and start as the identity")
    upsample = serializers.ChoiceField(choices=UPSAMPLES, required=False,
                                       help_text="transpose (the paper's) or resize: nearest-neighbour x2 then a conv")
    pool_size = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    precision = serializers.ChoiceField(choices=PRECISIONS, required=False,
                                        help_text="auto: bf16 autocast on a GPU, fp32 on a CPU")
    channels_last = serializers.BooleanField(required=False, allow_null=True)
    compile = serializers.BooleanField(required=False)
    time_limit_s = serializers.FloatField(min_value=1, max_value=30 * 86400, required=False, allow_null=True,
                                          help_text="stop (as succeeded, with a checkpoint) after this much training")
    log_every = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    sample_every = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    checkpoint_every = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    keep_checkpoints = serializers.IntegerField(min_value=1, max_value=100, required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError('config must be an object, e.g. {"image_size": 128, "epochs": 10}')
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields)
            raise serializers.ValidationError({key: [f"unknown config key; known keys are {known}"] for key in unknown})
        return super().to_internal_value(data)

    def validate_image_size(self, value: int) -> int:
        if value % 4:
            raise serializers.ValidationError(f"image_size must be a multiple of 4 (the generator halves it twice), not {value}")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("epochs") == 0 and attrs.get("decay_epochs") == 0:
            raise serializers.ValidationError("epochs + decay_epochs must be at least 1")
        load, size = attrs.get("load_size"), attrs.get("image_size", 256)
        if load is not None and load < size:
            raise serializers.ValidationError({"load_size": [f"load_size must be at least image_size ({size})"]})
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
