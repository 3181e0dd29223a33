"""The Scale-compatible routes: parse, authorise, call a labeling domain function, render Scale's shape.

Errors are `{"error": "…"}` objects whose status picks the `scaleapi` client's exception (400 bad
request, 401 bad key, 404 not found, 409 duplicate only).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.functions import Coalesce
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from winnow.exceptions import Conflict, DomainError, InvalidInput, NotAllowed, NotFound
from winnow.parsers import JSONParser

from .. import ingest, projects, quality, webhooks
from ..models import (
    Audit,
    AuditVerdict,
    Batch,
    BatchKind,
    BatchStatus,
    Task,
    TaskStatus,
)
from .auth import (
    OWNER,
    REVIEWERS,
    ScaleKeyAuthentication,
    _visible_projects,
    batch_by_name,
    project_by_name,
    readable_tasks,
    require_role,
    task_by_id,
)
from .shapes import (
    BATCH_STATUS,
    DEFAULT_TAXONOMY_KEY,
    PAGE_LIMIT,
    TASK_STATUS,
    TASK_STATUS_FILTER,
    TASK_TYPE,
    _assign_hotkeys,
    _from_token,
    _history_entry,
    _params_by_project,
    _review_filter,
    _token_for,
    batch_json,
    check_instruction,
    current_params,
    parse_bool,
    parse_int,
    parse_taxonomy,
    parse_time,
    project_json,
    task_json,
    task_queryset,
)


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
        check_instruction(instruction)
        if _visible_projects(request.user).filter(name=name).exists():
            raise Conflict(f"you already have a project named {name!r}", code="duplicate")
        fields: dict[str, Any] = {"name": name, "instructions": instruction}
        if question:
            fields["question"] = question
        fields["scale_params"] = {"type": TASK_TYPE, "taxonomy_key": key or DEFAULT_TAXONOMY_KEY,
                                  "param_history": [_history_entry(params, 0)]}
        project = projects.create_project(created_by=request.user, fields=fields, choices=_assign_hotkeys(choices, {}))
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
            check_instruction(params["instruction"])
            fields["instructions"] = params["instruction"]
        if question:
            fields["question"] = question
        if choices is not None:
            choices = _assign_hotkeys(choices, dict(project.choices.values_list("label", "hotkey")))
        scale = dict(project.scale_params or {})
        # A project made through Winnow's own API starts its history with what it was before this change.
        history = list(scale.get("param_history") or [_history_entry(current_params(project, 0), 0)])
        history.append(_history_entry(params, len(history)))
        scale.update(type=TASK_TYPE, param_history=history)
        if key:
            scale["taxonomy_key"] = key
        project = projects.update_project(project=project, fields={**fields, "scale_params": scale}, choices=choices)
        return Response(project_json(project))


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
        batch = projects.create_batch(project=project, name=name, kind=kind, created_by=request.user,
                                      callback_url=callback, metadata=metadata, self_label=self_label)
        return Response(batch_json(batch))


class BatchView(ScaleView):
    def get(self, request: Request, name: str) -> Response:
        return Response(batch_json(batch_by_name(request.user, name)))


class BatchFinalizeView(ScaleView):
    def post(self, request: Request, name: str) -> Response:
        batch = batch_by_name(request.user, name)
        require_role(request.user, batch.project, OWNER, "finalize batches")
        return Response(batch_json(projects.finalize_batch(batch=batch)))


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
        return Response(batch_json(projects.set_batch_metadata(batch=batch, metadata=self.body())))


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
            result = ingest.ingest_urls(batch=batch, items=[item])[0]
            if result["status"] == "duplicate":
                raise Conflict(f"a task with unique_id {unique_id!r} already exists (task {result.get('task_id')})",
                               code="duplicate")
            if result["status"] == "rejected":
                raise InvalidInput(result["reason"])
            if callback:
                ingest.edit_task(task=Task(pk=result["task_id"]), callback_url=callback)
        task = task_queryset().get(pk=result["task_id"])
        return Response(task_json(task, base_url=request.build_absolute_uri("/")))


class TaskView(ScaleView):
    def get(self, request: Request, task_id: str) -> Response:
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskCancelView(ScaleView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="cancel tasks")
        clear = parse_bool(request.query_params.get("clear_unique_id", "false"), "clear_unique_id")
        ingest.cancel_task(task=task, clear_unique_id=clear)
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
        ingest.edit_task(task=task, unique_id=unique_id)
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))

    def delete(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="change tasks")
        ingest.edit_task(task=task, unique_id=None)
        return Response(task_json(task_by_id(request.user, task_id), base_url=request.build_absolute_uri("/")))


class TaskMetadataView(ScaleView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_by_id(request.user, task_id, roles=OWNER, what="change tasks")
        ingest.edit_task(task=task, metadata=self.body())
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
