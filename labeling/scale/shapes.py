"""The objects as Scale documents them (projects, batches, tasks with their `response`), and the request values
Scale's client sends (booleans, times, page tokens, taxonomies in `params`). Reads only; webhooks use
the task and batch shapes for Scale-style callbacks.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from winnow.exceptions import InvalidInput

from ..models import (
    MAX_INSTRUCTIONS,
    MAX_LONG_HINT,
    Annotation,
    Audit,
    AuditVerdict,
    Batch,
    BatchKind,
    BatchStatus,
    Domain,
    Project,
    Task,
    TaskStatus,
)
from ..serializers import RESERVED_HOTKEYS, media_url

TASK_TYPE = "categorization"


DEFAULT_TAXONOMY_KEY = "category"


PAGE_LIMIT = 100


HOTKEYS = [k for k in "1234567890abcdefghijklmnopqrstvwxyz" if k not in RESERVED_HOTKEYS]


# Winnow's task and batch statuses as Scale names them.
TASK_STATUS = {
    TaskStatus.PENDING: "pending",  # the image is still being fetched
    TaskStatus.QUEUED: "pending",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.CANCELLED: "canceled",
    TaskStatus.FAILED: "error",
}


TASK_STATUS_FILTER = {
    "pending": [TaskStatus.PENDING, TaskStatus.QUEUED],
    "completed": [TaskStatus.COMPLETED],
    "canceled": [TaskStatus.CANCELLED],
    "error": [TaskStatus.FAILED],
}


BATCH_STATUS = {
    BatchStatus.OPEN: "staging",
    BatchStatus.FINALIZED: "in_progress",
    BatchStatus.LABELING: "in_progress",
    BatchStatus.LABELED: "completed",
    BatchStatus.AUDITED: "completed",
    BatchStatus.ACCEPTED: "completed",
    BatchStatus.REJECTED: "completed",
}


REVIEW_STATUSES = ("accepted", "fixed", "commented", "rejected", "pending")


def parse_bool(value: Any, name: str) -> bool:
    """Query booleans arrive as Python's `True`/`False` (the client's requests library str()s them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "0", "no", ""}:
        return False
    raise InvalidInput(f"{name} must be true or false, not {value!r}")


def parse_time(value: str, name: str, *, end_of_day: bool = False) -> datetime:
    """'YYYY-MM-DD HH:MM:SS.mmmmmm', ISO 8601 or a bare date, in UTC unless it says otherwise."""
    parsed = parse_datetime(value.strip().replace(" ", "T", 1)) if "T" in value or ":" in value else None
    if parsed is None:
        day = parse_date(value.strip())
        if day is None:
            raise InvalidInput(f"{name} must be a UTC time like '2024-05-01 12:00:00.000000' or a date, not {value!r}")
        parsed = datetime.combine(day, time.max if end_of_day else time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def parse_int(value: Any, name: str, *, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}, not {value!r}") from exc
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be from {low} to {high}, not {number}")
    return number


def _token_for(after: int, offset: int, total: int) -> str:
    """The next page's token: the last task id seen, and the listing's offset and total carried along, so
    later pages cost one indexed range read instead of two counts over the whole filtered set."""
    return base64.urlsafe_b64encode(f"after:{after}:{offset}:{total}".encode()).decode().rstrip("=")


def _from_token(token: str) -> tuple[int, int, int]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, *numbers = text.split(":")
        if prefix != "after" or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
            raise ValueError(text)
        after, offset, total = (int(n) for n in numbers)
        return after, offset, total
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("next_token is not one this server issued; pass the next_token of the previous page") from exc


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def taxonomy_key(project: Project) -> str:
    return (project.scale_params or {}).get("taxonomy_key") or DEFAULT_TAXONOMY_KEY


def current_params(project: Project, version: int) -> dict[str, Any]:
    """The project's taxonomy as Scale's categorization params: both the legacy `categories` list and
    the `taxonomies` object, plus Winnow's domain of each label."""
    choices = list(project.choices.all())
    labels = [c.label for c in choices]
    return {
        "version": version,
        "instruction": project.instructions,
        "categories": labels,
        "taxonomies": {taxonomy_key(project): {"type": "category", "description": project.question, "choices": labels}},
        "domains": {c.label: c.domain for c in choices},
    }


def project_json(project: Project) -> dict[str, Any]:
    history = list((project.scale_params or {}).get("param_history") or [])
    # Earlier versions as they were sent; the last one is what the project is now (it may have been
    # edited through Winnow's own API since).
    version = max(len(history) - 1, 0)
    history = history[:-1] + [current_params(project, version)]
    return {
        "id": project.pk,
        "name": project.name,
        "type": (project.scale_params or {}).get("type", TASK_TYPE),
        "param_history": history,
        "created_at": _iso(project.created_at),
        "calibration_approved": project.calibration_approved,
    }


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.pk,
        "name": batch.name,
        "project": batch.project.name,
        "status": BATCH_STATUS[BatchStatus(batch.status)],
        "created_at": _iso(batch.created_at),
        "metadata": batch.metadata,
        "callback": batch.callback_url,
        "calibration_batch": batch.kind == BatchKind.CALIBRATION and not batch.self_label,
        "self_label_batch": batch.self_label,
        "winnow_status": batch.status,
    }


def task_queryset() -> QuerySet[Task]:
    """Live tasks with what `task_json` reads, in a fixed number of queries per page.

    `review_verdict` is the verdict of the task's latest audit round; `gold_disputed` says whether any
    live answer differs from the owner's gold answer (a gold task whose answers the owner corrected).
    """
    latest_audit = Audit.objects.filter(task=OuterRef("pk")).order_by("-round")
    disputed = Annotation.objects.live().filter(task=OuterRef("pk")).exclude(choice=OuterRef("gold_choice"))
    return (
        Task.objects.alive()
        .select_related("project", "batch", "asset", "final_choice")
        .annotate(review_verdict=Subquery(latest_audit.values("verdict")[:1]), gold_disputed=Exists(disputed))
    )


def customer_review_status(task: Task) -> str | None:
    """Scale's audit status from Winnow's review: a sampled task's audit verdict (a correction is
    "fixed"), or for a calibration task the owner's gold answer ("accepted" if it agrees with every
    answer, "fixed" otherwise). None when nobody reviewed the task."""
    verdict = getattr(task, "review_verdict", None)
    if verdict == AuditVerdict.PENDING:
        return "pending"
    if verdict == AuditVerdict.CORRECT:
        return "accepted"
    if verdict == AuditVerdict.INCORRECT:
        return "fixed"
    if task.is_gold and task.gold_choice_id:
        return "fixed" if getattr(task, "gold_disputed", False) else "accepted"
    return None


def _review_filter(values: list[str]) -> Q:
    query = Q(pk__in=[])
    for value in values:
        if value not in REVIEW_STATUSES:
            raise InvalidInput(f"customer_review_status must be among {list(REVIEW_STATUSES)}, not {value!r}")
        if value == "pending":
            query |= Q(review_verdict=AuditVerdict.PENDING)
        elif value == "accepted":
            query |= Q(review_verdict=AuditVerdict.CORRECT) | Q(
                review_verdict__isnull=True, is_gold=True, gold_choice__isnull=False, gold_disputed=False
            )
        elif value == "fixed":
            query |= Q(review_verdict=AuditVerdict.INCORRECT) | Q(
                review_verdict__isnull=True, is_gold=True, gold_choice__isnull=False, gold_disputed=True
            )
        # "rejected" and "commented" never happen here: a Winnow reviewer who disagrees gives the right answer.
    return query


def attachment_url(task: Task, base_url: str) -> str | None:
    if task.source_url:
        return task.source_url
    if task.asset_id:
        return base_url.rstrip("/") + media_url(None, task.asset.file.name)
    return None


def task_json(task: Task, *, base_url: str, params: dict[str, Any] | None = None, limited: bool = False) -> dict[str, Any]:
    """A Winnow task as Scale's categorization task object. `task` comes from `task_queryset()`."""
    project = task.project
    doc: dict[str, Any] = {
        "task_id": str(task.pk),
        "status": TASK_STATUS[TaskStatus(task.status)],
        "metadata": task.metadata,
        "project": project.name,
        "batch": task.batch.name,
    }
    if limited:
        return doc
    params = params if params is not None else current_params(project, 0)
    key = taxonomy_key(project)
    doc.update(
        type=TASK_TYPE,
        created_at=_iso(task.created_at),
        updated_at=_iso(task.completed_at or task.created_at),
        completed_at=_iso(task.completed_at),
        instruction=project.instructions,
        params={
            "attachment": attachment_url(task, base_url),
            "attachment_type": "image",
            "categories": params["categories"],
            "taxonomies": params["taxonomies"],
        },
        callback_url=task.callback_url,
        unique_id=task.unique_id,
        is_test=False,
        urgency="standard",
        winnow={
            "id": task.pk,
            "project_id": task.project_id,
            "batch_id": task.batch_id,
            "status": task.status,
            "decided_by": task.decided_by or None,
            "agreement": task.agreement,
            "annotation_count": task.annotation_count,
            "is_gold": task.is_gold,
        },
    )
    if task.status == TaskStatus.COMPLETED and task.final_choice_id:
        label = task.final_choice.label
        doc["response"] = {"category": label, "taxonomies": {key: [label]}}
    if task.status == TaskStatus.FAILED:
        doc["error"] = task.error
    review = customer_review_status(task)
    if review:
        doc["customer_review_status"] = review
    return doc


def _params_by_project(tasks: list[Task]) -> dict[int, dict[str, Any]]:
    projects = {t.project_id: t.project for t in tasks}
    return {pk: current_params(project, 0) for pk, project in projects.items()}


def _label_of(item: Any) -> str:
    label = item.get("label") if isinstance(item, dict) else item
    if not isinstance(label, str) or not label.strip() or len(label.strip()) > 100:
        raise InvalidInput(f"each category must be a label of 1 to 100 characters (or an object with one), not {item!r}")
    return label.strip()


def parse_taxonomy(params: dict[str, Any]) -> tuple[str | None, str | None, list[dict[str, Any]] | None]:
    """(question, taxonomy key, choices) from `categories` or a single-entry `taxonomies`; Nones when absent.

    A category is a label, or an object with `label` and optionally `description`, `long_hint`,
    `hotkey` and `domain` (A, B or excluded); `params.domains` ({label: domain}) sets domains too.
    Labels without a domain are `excluded` until the owner assigns one.
    """
    if params.get("allow_multiple"):
        raise InvalidInput("Winnow tasks take one answer; allow_multiple is not supported")
    categories = params.get("categories")
    taxonomies = params.get("taxonomies")
    question = key = None
    if taxonomies is not None:
        if not isinstance(taxonomies, dict) or len(taxonomies) != 1:
            raise InvalidInput("Winnow projects ask one question: give exactly one entry in taxonomies")
        key, spec = next(iter(taxonomies.items()))
        if isinstance(spec, dict):
            if spec.get("type", "category") != "category":
                raise InvalidInput(f"taxonomy {key!r} must be of type 'category', not {spec.get('type')!r}")
            question = spec.get("description") if isinstance(spec.get("description"), str) else None
            if question is not None and len(question) > 500:
                raise InvalidInput(f"the description of taxonomy {key!r} is the project's question: at most 500 characters")
            items = spec.get("choices")
        else:
            items = spec
        if categories is not None and [_label_of(c) for c in categories] != [_label_of(c) for c in items or []]:
            raise InvalidInput("categories and taxonomies list different labels; send one of them")
    elif categories is not None:
        items = categories
    else:
        return None, None, None
    if not isinstance(items, list) or len(items) < 2:
        raise InvalidInput("give at least two categories, e.g. {\"categories\": [\"photo\", \"anime\"]}")
    if len(items) > len(HOTKEYS):
        raise InvalidInput(f"at most {len(HOTKEYS)} categories are supported")
    domains = params.get("domains") or {}
    if not isinstance(domains, dict):
        raise InvalidInput("domains must map labels to A, B or excluded")
    choices: list[dict[str, Any]] = []
    for item in items:
        label = _label_of(item)
        extra = item if isinstance(item, dict) else {}
        domain = extra.get("domain", domains.get(label, Domain.EXCLUDED))
        if domain not in Domain.values:
            raise InvalidInput(f"the domain of {label!r} must be one of {Domain.values}, not {domain!r}")
        hotkey = extra.get("hotkey")
        if hotkey is not None and (not isinstance(hotkey, str) or len(hotkey) != 1 or hotkey.lower() in RESERVED_HOTKEYS):
            raise InvalidInput(f"the hotkey of {label!r} must be one character other than {sorted(RESERVED_HOTKEYS)}")
        description = extra.get("description", "")
        long_hint = extra.get("long_hint", extra.get("hint", ""))
        if not isinstance(description, str) or len(description) > 300:
            raise InvalidInput(f"the description of {label!r} must be text of at most 300 characters")
        if not isinstance(long_hint, str) or len(long_hint) > MAX_LONG_HINT:
            raise InvalidInput(f"the long_hint of {label!r} must be text of at most {MAX_LONG_HINT:,} characters")
        choices.append({"label": label, "description": description, "long_hint": long_hint,
                        "hotkey": hotkey and hotkey.lower(), "domain": domain})
    labels = [c["label"] for c in choices]
    if len(set(labels)) != len(labels):
        raise InvalidInput("category labels must be unique")
    return question, str(key) if key is not None else None, choices


def _assign_hotkeys(choices: list[dict[str, Any]], existing: dict[str, str]) -> list[dict[str, Any]]:
    """Keep each label's hotkey (given, or the one it has), hand free keys to the rest in order."""
    for choice in choices:
        choice["hotkey"] = choice["hotkey"] or existing.get(choice["label"])
    used = [c["hotkey"] for c in choices if c["hotkey"]]
    if len(set(used)) != len(used):
        raise InvalidInput("two categories have the same hotkey")
    free = iter(k for k in HOTKEYS if k not in used)
    for choice in choices:
        choice["hotkey"] = choice["hotkey"] or next(free)
    return choices


def check_instruction(instruction: Any) -> None:
    if not isinstance(instruction, str):
        raise InvalidInput("instruction must be text (markdown)")
    if len(instruction) > MAX_INSTRUCTIONS:
        raise InvalidInput(f"instruction is {len(instruction):,} characters, over the limit of {MAX_INSTRUCTIONS:,}")


def _history_entry(params: dict[str, Any], version: int) -> dict[str, Any]:
    return {**params, "version": version, "created_at": timezone.now().isoformat()}
