"""Serializers validate and shape; they never call services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from winnow import serializers as strict

from .models import (
    Annotation,
    Asset,
    Audit,
    Batch,
    BatchKind,
    Choice,
    DecidedBy,
    Domain,
    LeaseOrder,
    Membership,
    Project,
    Role,
    Split,
    Task,
    TaskStatus,
)

# Keys the annotator page keeps for itself: skip, undo, show hints.
RESERVED_HOTKEYS = {"s", "u", "?", " "}


def media_url(request: Any, name: str) -> str:
    url = f"{settings.MEDIA_URL}{name}"
    if not url.startswith("/"):
        url = "/" + url
    return request.build_absolute_uri(url) if request is not None else url



@extend_schema_field({"anyOf": [{"type": "string", "format": "uri", "maxLength": 2000},
                                {"type": "string", "maxLength": 0}]})
class URLOrBlankField(serializers.URLField):
    """A URL, or "" for none: the schema says both, so an empty one is not a violation of it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)


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
            "max_error_rate", "min_gold_accuracy", "min_gold_answers", "lease_seconds", "trap_rate", "lease_order",
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

    def validate_trap_rate(self, value: float) -> float:
        if not 0 <= value <= 0.5:
            raise serializers.ValidationError("trap_rate must be between 0 and 0.5 (a share of a suggested page)")
        return value

    def validate_lease_order(self, value: str) -> str:
        if value not in LeaseOrder.values:
            raise serializers.ValidationError(f"lease_order must be one of {LeaseOrder.values}, not {value!r}")
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
    callback_url = URLOrBlankField(required=False)
    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    gold_copies = serializers.SerializerMethodField(help_text="hidden gold copies mixed into this batch")

    class Meta:
        model = Batch
        fields = [
            "id", "project", "name", "kind", "status", "callback_url", "created_at", "finalized_at",
            "labeled_at", "decided_at", "counts", "progress", "gold_copies", "audit_round",
        ]
        read_only_fields = ["project", "status", "created_at", "finalized_at", "labeled_at", "decided_at", "audit_round"]

    def get_counts(self, batch: Batch) -> dict[str, int]:
        return batch.counts()

    def get_progress(self, batch: Batch) -> float:
        return round(batch.progress(), 4)

    def get_gold_copies(self, batch: Batch) -> int:
        # task_gold_source_idx holds only gold copies, so this counts a few rows, not the batch.
        return batch.tasks.alive().filter(gold_source__isnull=False).count()


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


class SplitSerializer(strict.ModelSerializer):
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    warnings = serializers.SerializerMethodField(help_text="what the counts make doubtful, e.g. no test images")

    class Meta:
        model = Split
        fields = ["id", "project", "version", "status", "options", "counts", "manifest_sha256", "created_by",
                  "created_at", "approved_by", "approved_at", "warnings"]
        read_only_fields = fields

    def get_warnings(self, split: Split) -> list[str]:
        """A split is built whatever its counts; these say which of them would weaken training or evaluation."""
        notes = []
        for domain in ("A", "B"):
            counts = split.counts.get(domain, {})
            if not counts.get("total"):
                notes.append(f"no images of domain {domain}: a translator needs both domains")
                continue
            if counts.get("test", 0) == 0:
                notes.append(f"no test images of domain {domain}: FID and KID cannot be measured; "
                             "raise the test share or label more images")
            if counts.get("train", 0) < settings.WINNOW_MIN_DOMAIN_IMAGES:
                notes.append(f"{counts.get('train', 0)} training images of domain {domain}, fewer than the "
                             f"{settings.WINNOW_MIN_DOMAIN_IMAGES} a run needs")
        return notes


class SuggestionSerializer(strict.Serializer):
    """What the suggestion model proposes for a task (docs/ASSIST.md)."""

    choice = serializers.IntegerField(allow_null=True)
    label = serializers.CharField(allow_null=True)
    confidence = serializers.FloatField(help_text="calibrated on held-out gold: 0.9 is right about 9 times in 10")


class TaskLabelQualitySerializer(strict.Serializer):
    """A task's label quality from the latest check that scored it (docs/LABEL_ERRORS.md)."""

    score = serializers.FloatField(help_text="in [0, 1]; low: the answer is likely wrong")
    likely_error = serializers.BooleanField(help_text="flagged by confident learning (or CROWDLAB's consensus)")
    suggested = serializers.IntegerField(help_text="the choice the check finds most likely right")
    check = serializers.IntegerField(help_text="the check that scored it")
    stale = serializers.BooleanField(help_text="the answer changed since it was scored")


class TaskSerializer(strict.ModelSerializer):
    asset = AssetSerializer(read_only=True)
    source_url = URLOrBlankField(read_only=True)
    # "" until the task has an answer; the read-only field a ModelSerializer builds would drop the blank.
    decided_by = serializers.ChoiceField(choices=DecidedBy.choices, allow_blank=True, read_only=True)
    answer = serializers.CharField(source="final_choice.label", default=None, allow_null=True, read_only=True)
    annotations = serializers.SerializerMethodField()
    suggestion = serializers.SerializerMethodField(
        help_text="the suggestion model's choice for a queued task and its calibrated confidence (a suggestion, "
                  "not an answer); null when it has none")
    label_quality = serializers.SerializerMethodField(
        help_text="the likely-error check's score of the answer; null until a check scored it (gold and reviewed "
                  "answers are never scored)")

    class Meta:
        model = Task
        fields = [
            "id", "project", "batch", "unique_id", "status", "error", "metadata", "source_url", "source_name",
            "asset", "annotation_count", "answer", "final_choice", "decided_by", "agreement", "is_gold",
            "created_at", "completed_at", "annotations", "suggestion", "label_quality",
        ]
        read_only_fields = fields

    def get_annotations(self, task: Task) -> list[dict[str, Any]]:
        live = [a for a in task.annotations.all() if a.discarded_at is None]
        return AnnotationSerializer(live, many=True).data

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, task: Task) -> dict[str, Any] | None:
        try:
            suggestion = task.suggestion
        except ObjectDoesNotExist:
            return None
        return {"choice": suggestion.choice_id, "label": suggestion.choice.label,
                "confidence": round(suggestion.confidence, 4)}

    @extend_schema_field(TaskLabelQualitySerializer(allow_null=True))
    def get_label_quality(self, task: Task) -> dict[str, Any] | None:
        try:
            q = task.label_quality
        except ObjectDoesNotExist:
            return None
        return {"score": round(q.score, 4), "likely_error": q.likely_error, "suggested": q.suggested_id,
                "check": q.check_run_id, "stale": q.answer_id != task.final_choice_id}


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
    sha256 = serializers.CharField(required=False)
    near_duplicate_of = serializers.IntegerField(required=False, help_text="a task of the project whose image this "
                                                 "one nearly duplicates (perceptual hash)")
    near_duplicate_bits = serializers.IntegerField(required=False, help_text="hash bits apart, of 64")


class AnswerSerializer(strict.Serializer):
    choice = serializers.IntegerField()
    duration_ms = serializers.IntegerField(min_value=0, default=0)


class MemberWriteSerializer(strict.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


# --- accounts and annotators (owner pages: members) ---------------------------------------------


class AccountCreateSerializer(strict.Serializer):
    username = serializers.CharField(max_length=150, help_text="letters, digits and @.+-_ only")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.ANNOTATOR)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class AccountSerializer(strict.Serializer):
    """A new account and its membership; `password` is shown in this response only and never again."""

    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    password = serializers.CharField(help_text="generated; give it to the new member, it is not stored in clear")
    login_url = serializers.CharField()


class PauseSerializer(strict.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                   help_text="shown to the annotator; default: paused by the project's owner")


class AnnotatorStateSerializer(strict.Serializer):
    username = serializers.CharField()
    paused = serializers.BooleanField()
    paused_reason = serializers.CharField(allow_blank=True)


class AnnotatorRowSerializer(strict.Serializer):
    """One member's figures in a project (GET …/annotators/)."""

    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    answers = serializers.IntegerField()
    gold_answers = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    recent_gold_accuracy = serializers.FloatField(allow_null=True)
    median_duration_ms = serializers.FloatField(allow_null=True)
    paused = serializers.BooleanField()
    paused_reason = serializers.CharField(allow_blank=True)
    gold_scored_since = serializers.DateTimeField(allow_null=True)
    flagged = serializers.BooleanField()
    assisted_answers = serializers.IntegerField(help_text="answers given by confirming a suggestion")
    traps_shown = serializers.IntegerField(help_text="trap gold shown on suggested pages with a wrong suggestion")
    traps_accepted = serializers.IntegerField(help_text="traps answered with the wrong suggestion shown")
    trap_acceptance = serializers.FloatField(allow_null=True)


# --- the data manager: task filters, details and bulk actions ------------------------------------


class TaskFilterSerializer(strict.Serializer):
    """Query parameters of GET /tasks/. Every filter uses an index or the project's id-ordered scan."""

    project = serializers.IntegerField(required=False, min_value=1)
    batch = serializers.IntegerField(required=False, min_value=1)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    unique_id = serializers.CharField(required=False)
    answer = serializers.IntegerField(required=False, min_value=1, help_text="the final choice's id")
    annotator = serializers.CharField(required=False, help_text="tasks this username answered (live answers)")
    agreement_min = serializers.FloatField(required=False, min_value=0, max_value=1)
    agreement_max = serializers.FloatField(required=False, min_value=0, max_value=1)
    gold = serializers.BooleanField(required=False, allow_null=True, default=None)
    audited = serializers.ChoiceField(
        choices=["yes", "no", "pending", "correct", "incorrect"], required=False,
        help_text="yes: sampled in any audit; pending/correct/incorrect: by the verdict",
    )
    duplicate = serializers.BooleanField(required=False, allow_null=True, default=None,
                                         help_text="the image is also another task of the project (e.g. a gold copy)")
    error = serializers.CharField(required=False, help_text="failed tasks whose reason contains this text")
    near_duplicate = serializers.BooleanField(required=False, allow_null=True, default=None,
                                              help_text="the image nearly duplicates another of the project's")
    likely_error = serializers.BooleanField(required=False, allow_null=True, default=None,
                                            help_text="flagged (true) or scored and not flagged (false) by the "
                                                      "likely-error check")
    label_quality_max = serializers.FloatField(required=False, min_value=0, max_value=1,
                                               help_text="scored tasks whose label quality is at most this")
    ordering = serializers.ChoiceField(choices=["id", "label_quality"], required=False,
                                       help_text="label_quality: lowest score first, unscored tasks last")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("agreement_min"), attrs.get("agreement_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"agreement_max": ["agreement_max must be at least agreement_min"]})
        return attrs


class AuditRowSerializer(strict.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", default=None, allow_null=True, read_only=True)
    answer_label = serializers.CharField(source="answer.label", default=None, allow_null=True, read_only=True)
    corrected_label = serializers.CharField(source="corrected_choice.label", default=None, allow_null=True, read_only=True)

    class Meta:
        model = Audit
        fields = ["id", "round", "stratum", "answer", "answer_label", "verdict", "corrected_choice", "corrected_label",
                  "reviewer", "reviewed_at"]
        read_only_fields = fields


class NearDuplicateSerializer(strict.Serializer):
    task = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["phash", "embedding"])
    distance = serializers.FloatField(help_text="hash bits apart (phash) or cosine distance (embedding)")


class TaskDetailSerializer(TaskSerializer):
    """A task with everything the data manager's drawer shows: gold, audits, its batch's name."""

    batch_name = serializers.CharField(source="batch.name", read_only=True)
    gold_choice = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    gold_label = serializers.CharField(source="gold_choice.label", default=None, allow_null=True, read_only=True)
    audits = AuditRowSerializer(many=True, read_only=True)
    near_duplicates = serializers.SerializerMethodField(help_text="tasks whose image nearly duplicates this one")

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "batch_name", "gold_choice", "gold_label", "gold_source", "audits",
                  "near_duplicates"]
        read_only_fields = fields

    @extend_schema_field(NearDuplicateSerializer(many=True))
    def get_near_duplicates(self, task: Task) -> list[dict[str, Any]]:
        return self.context.get("near_duplicates", [])


class TaskBulkSerializer(strict.Serializer):
    action = serializers.ChoiceField(
        choices=["cancel", "make_gold", "relabel"],
        help_text="cancel: take queued tasks out; make_gold: confirm calibration answers as gold; "
                  "relabel: discard the answers and queue the task again",
    )
    tasks = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)
    choice = serializers.IntegerField(required=False, allow_null=True, default=None,
                                      help_text="make_gold: the right choice (default: each task's current answer)")


class TaskBulkItemSerializer(strict.Serializer):
    task = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["done", "refused"])
    code = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)


class TaskBulkResultSerializer(strict.Serializer):
    summary = serializers.DictField(child=serializers.IntegerField())
    results = TaskBulkItemSerializer(many=True)


# --- the quality page ------------------------------------------------------------------------------


class GoldPointSerializer(strict.Serializer):
    start = serializers.DateTimeField(help_text="the day (or week) the answers were given")
    answers = serializers.IntegerField()
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField()


class GoldSeriesSerializer(strict.Serializer):
    username = serializers.CharField()
    points = GoldPointSerializer(many=True)


class GoldAccuracySerializer(strict.Serializer):
    bucket = serializers.ChoiceField(choices=["day", "week"])
    min_gold_accuracy = serializers.FloatField()
    series = GoldSeriesSerializer(many=True)


class GoldAccuracyQuerySerializer(strict.Serializer):
    bucket = serializers.ChoiceField(choices=["day", "week"], default="day")


class HelpFiguresSerializer(strict.Serializer):
    """Audit figures of one kind of answer: assisted (a confirmed suggestion) or unassisted."""

    audited = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    wilson = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)


class BatchAuditSerializer(strict.Serializer):
    """One batch's audit figures, its current round (the same as GET /batches/{id}/quality/)."""

    batch = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    round = serializers.IntegerField()
    seed = serializers.IntegerField(allow_null=True)
    audited = serializers.IntegerField()
    pending = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    wilson = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    clopper_pearson = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    max_error_rate = serializers.FloatField()
    decision = serializers.ChoiceField(choices=["accepted", "rejected", "pending"])
    assisted = HelpFiguresSerializer()
    unassisted = HelpFiguresSerializer()
    summary = serializers.CharField()


# --- responses of the quality, labeling and split routes (declared for the OpenAPI schema) --------------


class AccuracyCellSerializer(strict.Serializer):
    correct = serializers.IntegerField()
    total = serializers.IntegerField()
    accuracy = serializers.FloatField()


class CalibrationReportSerializer(strict.Serializer):
    tasks = serializers.IntegerField()
    reviewed = serializers.IntegerField(help_text="calibration tasks with the owner's answer (gold)")
    answers = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    per_choice = serializers.DictField(child=AccuracyCellSerializer(), help_text="by the gold choice's label")
    per_annotator = serializers.DictField(child=AccuracyCellSerializer(), help_text="by username")
    labels = serializers.ListField(child=serializers.CharField())
    confusion = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                      help_text="rows: the gold label, columns: the answer, in `labels` order")
    median_duration_ms = serializers.FloatField(allow_null=True)
    approved = serializers.BooleanField()


class BatchQualitySerializer(strict.Serializer):
    batch = serializers.IntegerField()
    status = serializers.CharField()
    round = serializers.IntegerField()
    seed = serializers.IntegerField(allow_null=True)
    plan = serializers.DictField()
    audited = serializers.IntegerField()
    pending = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    wilson = serializers.ListField(child=serializers.FloatField(), help_text="95% interval of the error rate")
    clopper_pearson = serializers.ListField(child=serializers.FloatField(), help_text="exact 95% interval")
    max_error_rate = serializers.FloatField()
    decision = serializers.CharField(allow_null=True)
    per_choice = serializers.DictField()
    consensus = serializers.DictField()
    gold = serializers.DictField(child=serializers.IntegerField())
    assisted = HelpFiguresSerializer(help_text="audited tasks answered by confirming a suggestion")
    unassisted = HelpFiguresSerializer()
    summary = serializers.CharField(help_text='e.g. "1 error in 200 audited"')


class ConsensusEstimatesSerializer(strict.Serializer):
    tasks = serializers.ListField(child=serializers.DictField(), help_text="per task: majority and Dawid–Skene")
    flagged = serializers.IntegerField()
    iterations = serializers.IntegerField()


class AuditPlanSerializer(strict.Serializer):
    requested = serializers.IntegerField(allow_null=True)
    size = serializers.IntegerField()
    population = serializers.IntegerField()
    strata = serializers.DictField(child=serializers.IntegerField())
    max_error_rate = serializers.FloatField()
    clean_audits_needed = serializers.IntegerField()
    upper_bound_if_clean = serializers.FloatField()
    can_accept = serializers.BooleanField()
    explanation = serializers.CharField()


class AuditDrawnSerializer(strict.Serializer):
    batch = serializers.IntegerField()
    status = serializers.CharField()
    round = serializers.IntegerField()
    seed = serializers.IntegerField()
    plan = AuditPlanSerializer()
    tasks = serializers.ListField(child=serializers.IntegerField())


class StandingSerializer(strict.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    paused = serializers.BooleanField()
    paused_reason = serializers.CharField(allow_blank=True)
    gold_accuracy = serializers.DictField(allow_null=True, help_text="in whole blocks of gold answers")
    gold_feedback_block = serializers.IntegerField()
    scored_since = serializers.DateTimeField(allow_null=True)
    min_gold_accuracy = serializers.FloatField()
    min_gold_answers = serializers.IntegerField()


class ProgressSerializer(strict.Serializer):
    mine = serializers.IntegerField()
    done = serializers.IntegerField()
    remaining = serializers.IntegerField()
    batches = serializers.ListField(child=serializers.DictField())
    gold_accuracy = serializers.FloatField(allow_null=True)


class GoldSetSerializer(strict.Serializer):
    task = serializers.IntegerField()
    is_gold = serializers.BooleanField()
    gold_choice = serializers.IntegerField(allow_null=True)
    answer = serializers.CharField(allow_null=True, help_text="the gold choice's label")


class AuditVerdictResultSerializer(strict.Serializer):
    task = serializers.IntegerField()
    verdict = serializers.CharField()
    corrected_choice = serializers.IntegerField(allow_null=True)
    batch_status = serializers.CharField()


class RequeuedSerializer(strict.Serializer):
    username = serializers.CharField(required=False)
    paused = serializers.BooleanField(required=False)
    batch = serializers.IntegerField(required=False)
    status = serializers.CharField(required=False)
    requeued = serializers.IntegerField(required=False)


class BulkAnswerResultSerializer(strict.Serializer):
    summary = serializers.DictField(child=serializers.IntegerField(), help_text="created, duplicate, rejected")
    results = serializers.ListField(child=serializers.DictField(), help_text="per item: status, task, code, detail")


class AnnotationResultSerializer(strict.Serializer):
    id = serializers.IntegerField()
    task = serializers.IntegerField()
    choice = serializers.IntegerField()
    created = serializers.BooleanField(required=False)


class SkipResultSerializer(strict.Serializer):
    task = serializers.IntegerField()
    skipped = serializers.BooleanField()
