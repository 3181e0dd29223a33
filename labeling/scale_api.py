"""A Scale-compatible REST API under /v1, so scripts written for Scale's API and its official Python
client (`scaleapi`) run unchanged against Winnow.

What the client (2.18.4) needs, and this module keeps to: HTTP basic auth with the API key (the user's
Winnow API token) as the username; only HTTP 200 is success; routes have no trailing slash; errors are
`{"error": "…"}` objects whose status picks the client's exception (400 bad request, 401 bad key, 404
not found, 409 duplicate only: a state that forbids the request, such as finalizing a finalized
batch, is a 400); project and batch names arrive percent-encoded and may contain `/`; task lists
page with `next_token` and never say `has_more` without one; query booleans arrive as `True`/`False`.

Projects, batches and tasks made here are ordinary Winnow objects (same queue, gold, consensus,
audits, exports and splits). Views parse, authorise and call the labeling services; the shapes
Scale documents are built by `project_json`, `batch_json` and `task_json`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, time
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from winnow.parsers import JSONParser

from . import quality, services, webhooks
from .exceptions import Conflict, DomainError, InvalidInput, NotAllowed, NotFound
from .models import (
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
    Role,
    Task,
    TaskStatus,
)
from .permissions import role_in
from .serializers import RESERVED_HOTKEYS, media_url

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


# --- authentication and errors ----------------------------------------------------------------


class ScaleKeyAuthentication(BaseAuthentication):
    """The API key as the basic-auth username (password empty), as Scale's client sends it; a Bearer
    header with the key is accepted too. The key is the user's Winnow API token."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        parts = get_authorization_header(request).split()
        if not parts:
            return None
        scheme = parts[0].lower()
        if scheme == b"basic" and len(parts) == 2:
            try:
                key = base64.b64decode(parts[1], validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise drf_exceptions.AuthenticationFailed("malformed basic auth header; send the API key as the username") from exc
        elif scheme == b"bearer" and len(parts) == 2:
            key = parts[1].decode(errors="replace")
        else:
            return None
        token = Token.objects.select_related("user").filter(key=key).first()
        if token is None or not token.user.is_active:
            raise drf_exceptions.AuthenticationFailed(
                "invalid API key: use your Winnow API token (POST /api/v1/auth/token/) as the basic-auth username"
            )
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Winnow"'


def _status_of(exc: DomainError) -> int:
    # The client raises ScaleDuplicateResource for every 409, so only duplicates get it.
    if exc.code == "duplicate":
        return 409
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, NotAllowed):
        return 403
    return 400


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" if k != "non_field_errors" else _flatten(v) for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(d) for d in detail)
    return str(detail)


class ScaleView(APIView):
    schema = None  # documented in docs/SCALE_API.md as Scale's API; kept out of Winnow's OpenAPI schema
    authentication_classes = [ScaleKeyAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        headers: dict[str, str] = {}
        if isinstance(exc, DomainError):
            code, message = _status_of(exc), exc.message
        elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            code, message = 401, _flatten(exc.detail)
            headers["WWW-Authenticate"] = self.get_authenticate_header(self.request) or 'Basic realm="Winnow"'
        elif isinstance(exc, drf_exceptions.APIException):
            code, message = exc.status_code, _flatten(exc.detail)
        elif isinstance(exc, Http404):
            code, message = 404, str(exc) or "not found"
        else:
            raise exc
        return Response({"error": message, "status_code": code}, status=code, headers=headers)

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if data is None or data == {}:
            return {}
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data


# --- parsing helpers --------------------------------------------------------------------------


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


# --- lookups and roles ------------------------------------------------------------------------


def _visible_projects(user: Any) -> QuerySet[Project]:
    return Project.objects.for_user(user)


def project_by_name(user: Any, name: str) -> Project:
    matches = list(_visible_projects(user).filter(name=name).order_by("id")[:2])
    if not matches:
        raise NotFound(f"no project named {name!r} is visible to this API key")
    if len(matches) > 1:
        raise InvalidInput(
            f"more than one of your projects is named {name!r}; rename one (PATCH /api/v1/projects/{{id}}/) so "
            "Scale-style names are unique"
        )
    return matches[0]


def batch_by_name(user: Any, name: str, project: Project | None = None) -> Batch:
    batches = Batch.objects.alive().select_related("project").filter(name=name, project__in=_visible_projects(user))
    if project is not None:
        batches = batches.filter(project=project)
    matches = list(batches.order_by("id")[:2])
    if not matches:
        raise NotFound(f"no batch named {name!r} is visible to this API key")
    if len(matches) > 1:
        raise InvalidInput(f"batch name {name!r} is used in several of your projects; pass `project` to choose one")
    return matches[0]


OWNER = {Role.OWNER}
REVIEWERS = {Role.OWNER, Role.REVIEWER}
ANNOTATORS_LEASE = (
    "annotators see tasks only by leasing them (POST /api/v1/projects/{id}/next-tasks/): a task's details "
    "and listings show gold tasks and other people's answers"
)


def readable_tasks(user: Any) -> QuerySet[Task]:
    """Tasks of the projects where the user is an owner or a reviewer, as the native task listing
    scopes them. One filter() call, so user and role match the same membership row."""
    return task_queryset().filter(
        project__memberships__user=user, project__memberships__role__in=REVIEWERS, project__deleted_at__isnull=True
    )


def task_by_id(user: Any, task_id: str, *, roles: set[str] = REVIEWERS, what: str = "read tasks") -> Task:
    """The task, for a caller whose role in its project is one of `roles`: 404 for a task of a project
    the caller is not a member of (as for one that does not exist), 403 for a member in another role."""
    task = None
    if task_id.isascii() and task_id.isdigit() and int(task_id) <= services.MAX_ID:
        task = task_queryset().filter(pk=int(task_id), project__in=_visible_projects(user)).first()
    if task is None:
        raise NotFound(f"no task {task_id!r} is visible to this API key")
    role = role_in(user, task.project)
    if role not in roles:
        if role == Role.ANNOTATOR and roles == REVIEWERS:
            raise NotAllowed(ANNOTATORS_LEASE)
        require_role(user, task.project, roles, what)
    return task


def require_role(user: Any, project: Project, roles: set[str], what: str) -> None:
    if role_in(user, project) not in roles:
        raise NotAllowed(f"only the project's {' and '.join(sorted(r + 's' for r in roles))} may {what}")


# --- shapes -----------------------------------------------------------------------------------


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


# --- taxonomy from Scale params ---------------------------------------------------------------


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


def _check_instruction(instruction: Any) -> None:
    if not isinstance(instruction, str):
        raise InvalidInput("instruction must be text (markdown)")
    if len(instruction) > MAX_INSTRUCTIONS:
        raise InvalidInput(f"instruction is {len(instruction):,} characters, over the limit of {MAX_INSTRUCTIONS:,}")


def _history_entry(params: dict[str, Any], version: int) -> dict[str, Any]:
    return {**params, "version": version, "created_at": timezone.now().isoformat()}


# --- projects ---------------------------------------------------------------------------------


class ProjectsView(ScaleView):
    def get(self, request: Request) -> Response:
        projects = _visible_projects(request.user).prefetch_related("choices").order_by("id")
        return Response([project_json(p) for p in projects])

    def post(self, request: Request) -> Response:
        body = self.body()
        if body.get("type") != TASK_TYPE:
            raise InvalidInput(f"Winnow projects are categorization projects; send type 'categorization', not {body.get('type')!r}")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("name is required: 1 to 200 characters")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInput("params must be an object, e.g. {\"instruction\": \"…\", \"categories\": [\"a\", \"b\"]}")
        question, key, choices = parse_taxonomy(params)
        if choices is None:
            raise InvalidInput("params must give the categories to choose from: {\"categories\": [\"photo\", \"anime\"]}")
        instruction = params.get("instruction", "")
        _check_instruction(instruction)
        if _visible_projects(request.user).filter(name=name).exists():
            raise Conflict(f"you already have a project named {name!r}", code="duplicate")
        fields: dict[str, Any] = {"name": name, "instructions": instruction}
        if question:
            fields["question"] = question
        with transaction.atomic():
            project = services.create_project(created_by=request.user, fields=fields,
                                              choices=_assign_hotkeys(choices, {}))
            project.scale_params = {"type": TASK_TYPE, "taxonomy_key": key or DEFAULT_TAXONOMY_KEY,
                                    "param_history": [_history_entry(params, 0)]}
            project.save(update_fields=["scale_params"])
        return Response(project_json(project))


class ProjectView(ScaleView):
    def get(self, request: Request, name: str) -> Response:
        return Response(project_json(project_by_name(request.user, name)))


class ProjectParamsView(ScaleView):
    """setParams: a new instruction and/or taxonomy; labels kept by name keep their answers."""

    def post(self, request: Request, name: str) -> Response:
        project = project_by_name(request.user, name)
        require_role(request.user, project, OWNER, "change its parameters")
        params = self.body()
        question, key, choices = parse_taxonomy(params)
        fields: dict[str, Any] = {}
        if "instruction" in params:
            _check_instruction(params["instruction"])
            fields["instructions"] = params["instruction"]
        if question:
            fields["question"] = question
        if choices is not None:
            choices = _assign_hotkeys(choices, dict(project.choices.values_list("label", "hotkey")))
        scale = dict(project.scale_params or {})
        # A project made through Winnow's own API starts its history with what it was before this change.
        history = list(scale.get("param_history") or [_history_entry(current_params(project, 0), 0)])
        with transaction.atomic():
            project = services.update_project(project=project, fields=fields, choices=choices)
            history.append(_history_entry(params, len(history)))
            scale.update(type=TASK_TYPE, param_history=history)
            if key:
                scale["taxonomy_key"] = key
            Project.objects.filter(pk=project.pk).update(scale_params=scale)
            project.scale_params = scale
        return Response(project_json(project))


# --- batches ----------------------------------------------------------------------------------


def _callback(value: Any, field: str) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, str) and "@" in value and "://" not in value:
        raise InvalidInput(f"{field}: Winnow sends callbacks to URLs, not e-mail addresses")
    return webhooks.check_receiver_url(value, field=field)


class BatchesView(ScaleView):
    def get(self, request: Request) -> Response:
        params = request.query_params
        batches = Batch.objects.alive().select_related("project").filter(project__in=_visible_projects(request.user))
        if params.get("project"):
            batches = batches.filter(project__name=params["project"])
        if params.get("status"):
            wanted = [s for s, scale in BATCH_STATUS.items() if scale == params["status"]]
            if not wanted:
                raise InvalidInput("status must be staging, in_progress or completed")
            batches = batches.filter(status__in=wanted)
        if params.get("start_time"):
            batches = batches.filter(created_at__gte=parse_time(params["start_time"], "start_time"))
        if params.get("end_time"):
            batches = batches.filter(created_at__lte=parse_time(params["end_time"], "end_time", end_of_day=True))
        if "exclude_archived" in params:
            parse_bool(params["exclude_archived"], "exclude_archived")  # Winnow does not archive batches
        limit = parse_int(params.get("limit"), "limit", low=1, high=PAGE_LIMIT, default=PAGE_LIMIT)
        offset = parse_int(params.get("offset"), "offset", low=0, high=10**9, default=0)
        total = batches.count()
        page = list(batches.order_by("id")[offset : offset + limit])
        return Response({"docs": [batch_json(b) for b in page], "totalDocs": total, "limit": limit,
                         "offset": offset, "has_more": offset + len(page) < total})

    def post(self, request: Request) -> Response:
        body = self.body()
        project_name, name = body.get("project"), body.get("name")
        if not isinstance(project_name, str) or not project_name:
            raise InvalidInput("project is required: the name of the project the batch belongs to")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("name is required: 1 to 200 characters")
        project = project_by_name(request.user, project_name)
        require_role(request.user, project, OWNER, "create batches")
        calibration = parse_bool(body.get("calibration_batch", False), "calibration_batch")
        self_label = parse_bool(body.get("self_label_batch", False), "self_label_batch")
        if calibration and self_label:
            raise InvalidInput("a batch is a calibration batch or a self-label batch, not both")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidInput("metadata must be a JSON object")
        callback = _callback(body.get("callback"), "callback")
        # Scale names batches per account: a name used in any of the key's projects is taken.
        if Batch.objects.alive().filter(name=name, project__in=_visible_projects(request.user)).exists():
            raise Conflict(f"a batch named {name!r} already exists", code="duplicate")
        kind = BatchKind.CALIBRATION if calibration or self_label else BatchKind.PRODUCTION
        with transaction.atomic():
            batch = services.create_batch(project=project, name=name, kind=kind, created_by=request.user,
                                          callback_url=callback)
            batch.metadata, batch.self_label = metadata, self_label
            batch.save(update_fields=["metadata", "self_label"])
        return Response(batch_json(batch))


class BatchView(ScaleView):
    def get(self, request: Request, name: str) -> Response:
        return Response(batch_json(batch_by_name(request.user, name)))


class BatchFinalizeView(ScaleView):
    def post(self, request: Request, name: str) -> Response:
        batch = batch_by_name(request.user, name)
        require_role(request.user, batch.project, OWNER, "finalize batches")
        return Response(batch_json(services.finalize_batch(batch=batch)))


class BatchStatusView(ScaleView):
    def get(self, request: Request, name: str) -> Response:
        try:
            batch = batch_by_name(request.user, name)
        except NotFound:
            # The path is decoded before routing, so a batch literally named "x/status" arrives here as "x".
            return Response(batch_json(batch_by_name(request.user, f"{name}/status")))
        counts = batch.counts()
        return Response({
            "status": BATCH_STATUS[BatchStatus(batch.status)],
            "pending": counts[TaskStatus.PENDING] + counts[TaskStatus.QUEUED],
            "completed": counts[TaskStatus.COMPLETED],
            "error": counts[TaskStatus.FAILED],
            "canceled": counts[TaskStatus.CANCELLED],
        })


class BatchMetadataView(ScaleView):
    def post(self, request: Request, name: str) -> Response:
        batch = batch_by_name(request.user, name)
        require_role(request.user, batch.project, OWNER, "change batch metadata")
        batch.metadata = self.body()
        batch.save(update_fields=["metadata"])
        return Response(batch_json(batch))


# --- tasks ------------------------------------------------------------------------------------


class TaskCreateView(ScaleView):
    def get(self, request: Request, task_type: str) -> Response:
        raise NotFound(f"no task {task_type!r} is visible to this API key")

    def post(self, request: Request, task_type: str) -> Response:
        if task_type != TASK_TYPE:
            raise InvalidInput(f"Winnow creates categorization tasks only, not {task_type!r}")
        body = self.body()
        batch_name = body.get("batch")
        if not isinstance(batch_name, str) or not batch_name:
            raise InvalidInput("batch is required: Winnow tasks belong to a batch (create one with create_batch)")
        project = None
        if body.get("project"):
            project = project_by_name(request.user, str(body["project"]))
        batch = batch_by_name(request.user, batch_name, project)
        require_role(request.user, batch.project, OWNER, "create tasks")
        if body.get("attachment_type", "image") != "image":
            raise InvalidInput(f"Winnow labels images; attachment_type must be 'image', not {body.get('attachment_type')!r}")
        attachment = body.get("attachment")
        if not isinstance(attachment, str) or not attachment:
            raise InvalidInput("attachment is required: the http(s) URL of the image")
        question, _key, choices = parse_taxonomy({k: body[k] for k in ("categories", "taxonomies") if k in body})
        if choices is not None:
            sent = sorted(c["label"] for c in choices)
            have = sorted(batch.project.choices.values_list("label", flat=True))
            if sent != have:
                raise InvalidInput(f"the project's categories are {have}; every task uses the project's taxonomy "
                                   "(change it with setParams)")
        callback = _callback(body.get("callback_url"), "callback_url")
        unique_id = body.get("unique_id")
        metadata = body.get("metadata") or {}
        item = {"image_url": attachment, "metadata": metadata}
        if unique_id is not None:
            item["unique_id"] = unique_id
        with transaction.atomic():
            result = services.ingest_urls(batch=batch, items=[item])[0]
            if result["status"] == "duplicate":
                raise Conflict(f"a task with unique_id {unique_id!r} already exists (task {result.get('task_id')})",
                               code="duplicate")
            if result["status"] == "rejected":
                raise InvalidInput(result["reason"])
            if callback:
                Task.objects.filter(pk=result["task_id"]).update(callback_url=callback)
        task = task_queryset().get(pk=result["task_id"])
        return Response(task_json(task, base_url=request.build_absolute_uri("/")))


class TaskView(ScaleView):
    def get(self, request: Request, task_id: str) -> Response:
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskCancelView(ScaleView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="cancel tasks")
        clear = parse_bool(request.query_params.get("clear_unique_id", "false"), "clear_unique_id")
        with transaction.atomic():
            services.cancel_task(task=task)
            if clear:
                Task.objects.filter(pk=task.pk).update(unique_id=None)
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskAuditView(ScaleView):
    """Accept or reject a completed task's answer, through Winnow's review.

    A task in its batch's open audit sample gets the caller's audit verdict; a calibration task gets
    the owner's gold answer (accepted: the answer stands). A rejection needs the right answer, as the
    Winnow extension `"category": "<label>"`: reviewers correct answers rather than discard them.
    """

    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id)
        body = self.body()
        if "accepted" not in body:
            raise InvalidInput("accepted is required: true to accept the answer, false to reject it")
        accepted = parse_bool(body["accepted"], "accepted")
        choice_id = None
        if body.get("category") is not None:
            choice_id = task.project.choices.filter(label=body["category"]).values_list("id", flat=True).first()
            if choice_id is None:
                raise InvalidInput(f"{body['category']!r} is not one of the project's categories")
        if task.status != TaskStatus.COMPLETED:
            raise InvalidInput(f"only completed tasks can be audited; this task is {TASK_STATUS[TaskStatus(task.status)]}")
        if not accepted and choice_id is None:
            raise InvalidInput('a rejected answer needs the right one: send "category": "<label>" with accepted=false '
                               "(Winnow corrects answers rather than discarding them)")
        sampled = Audit.objects.filter(task=task, round=task.batch.audit_round, batch__status=BatchStatus.AUDITED,
                                       verdict=AuditVerdict.PENDING).exists()
        if sampled:
            require_role(request.user, task.project, REVIEWERS, "audit tasks")
            quality.submit_audit(task=task, reviewer=request.user, correct=accepted,
                                 choice_id=None if accepted else choice_id)
        elif task.batch.kind == BatchKind.CALIBRATION:
            require_role(request.user, task.project, OWNER, "review calibration answers")
            quality.set_gold(task=task, choice_id=task.final_choice_id if accepted else choice_id)
        else:
            raise InvalidInput(
                "this task is not in an open audit sample: production tasks are audited by sample; draw the "
                f"batch's sample (POST /api/v1/batches/{task.batch_id}/audit/) once it is labeled"
            )
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskUniqueIdView(ScaleView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="change tasks")
        unique_id = self.body().get("unique_id")
        if not isinstance(unique_id, str) or not 0 < len(unique_id) <= 255:
            raise InvalidInput("unique_id must be a string of 1 to 255 characters")
        try:
            with transaction.atomic():
                Task.objects.filter(pk=task.pk).update(unique_id=unique_id)
        except IntegrityError as exc:
            raise Conflict(f"another task of this project has unique_id {unique_id!r}", code="duplicate") from exc
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))

    def delete(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="change tasks")
        Task.objects.filter(pk=task.pk).update(unique_id=None)
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskMetadataView(ScaleView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="change tasks")
        Task.objects.filter(pk=task.pk).update(metadata=self.body())
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TasksView(ScaleView):
    """GET /v1/tasks: the client's filters, 1 to 100 tasks a page, in creation order, `next_token` paging."""

    def get(self, request: Request) -> Response:
        params = request.query_params
        if params.get("tags"):
            raise InvalidInput("Winnow tasks have no tags; filter by project, batch, status or unique_id")
        tasks = readable_tasks(request.user)
        if params.get("project"):
            tasks = tasks.filter(project__name=params["project"])
        if params.get("batch"):
            tasks = tasks.filter(batch__name=params["batch"])
        if params.get("type") and params["type"] != TASK_TYPE:
            tasks = tasks.none()
        if params.get("status"):
            if params["status"] not in TASK_STATUS_FILTER:
                raise InvalidInput(f"status must be one of {sorted(TASK_STATUS_FILTER)}, not {params['status']!r}")
            tasks = tasks.filter(status__in=TASK_STATUS_FILTER[params["status"]])
        unique_ids = [u for u in params.getlist("unique_id") if u]
        if unique_ids:
            tasks = tasks.filter(unique_id__in=unique_ids)
        if params.get("customer_review_status"):
            tasks = tasks.filter(_review_filter(params["customer_review_status"].split(",")))
        ranges = {
            "start_time": ("created_at__gte", False), "end_time": ("created_at__lte", True),
            "completed_after": ("completed_at__gte", False), "completed_before": ("completed_at__lte", True),
            "updated_after": ("updated__gte", False), "updated_before": ("updated__lte", True),
        }
        if params.get("updated_after") or params.get("updated_before"):
            tasks = tasks.alias(updated=Coalesce("completed_at", "created_at"))
        for name, (lookup, end) in ranges.items():
            if params.get(name):
                tasks = tasks.filter(**{lookup: parse_time(params[name], name, end_of_day=end)})
        for name in ("include_attachment_url", "limited_response"):
            if name in params:
                parse_bool(params[name], name)
        limited = parse_bool(params.get("limited_response", "false"), "limited_response")
        limit = parse_int(params.get("limit"), "limit", low=1, high=PAGE_LIMIT, default=PAGE_LIMIT)
        if params.get("next_token"):
            # The total is counted when a listing starts; its later pages repeat it.
            after, offset, total = _from_token(params["next_token"])
        else:
            after, offset, total = 0, 0, tasks.count()
        page = list(tasks.filter(id__gt=after).order_by("id")[: limit + 1])
        has_more = len(page) > limit
        page = page[:limit]
        by_project = _params_by_project(page)
        base_url = request.build_absolute_uri("/")
        return Response({
            "docs": [task_json(t, base_url=base_url, params=by_project[t.project_id], limited=limited) for t in page],
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": has_more,
            # has_more and next_token go together: the client stops on has_more, other scripts on the token.
            "next_token": _token_for(page[-1].pk, offset + len(page), total) if has_more else None,
        })


class TagsView(ScaleView):
    def _refuse(self, request: Request, task_id: str) -> Response:
        task_by_id(request.user, task_id)
        raise InvalidInput("Winnow tasks have no tags; keep labels of your own in the task's metadata")

    get = post = put = delete = _refuse


class NotSupportedView(ScaleView):
    def _refuse(self, request: Request, rest: str = "") -> Response:
        raise NotFound(
            f"{request.method} /v1/{rest} is not part of Winnow's Scale-compatible API (projects, batches and "
            "categorization tasks are); see docs/SCALE_API.md"
        )

    get = post = put = patch = delete = _refuse
