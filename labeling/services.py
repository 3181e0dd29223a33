"""Labeling workflows as plain functions: projects and taxonomy, batches, ingestion, leasing, answers.

Each function takes keyword-only arguments, runs in one transaction and returns model instances.
They raise the domain exceptions of `exceptions.py`; the API maps those to 400/403/404/409.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import ingest, prepared, stats, webhooks
from .exceptions import (
    CalibrationRequired,
    Conflict,
    DomainError,
    IllegalTransition,
    InvalidInput,
    LeaseExpired,
    NotAllowed,
    NotFound,
)
from .models import (
    Annotation,
    Asset,
    Batch,
    BatchKind,
    BatchStatus,
    Choice,
    DecidedBy,
    Lease,
    Membership,
    Project,
    Role,
    Task,
    TaskStatus,
)
from .rows import convert, loaded

log = logging.getLogger(__name__)
User = get_user_model()

URL_JOB_CHUNK = 100
# Batches whose tasks are handed out to annotators.
LABELABLE_BATCH_STATUSES = (BatchStatus.FINALIZED, BatchStatus.LABELING)
# How many tasks one annotator may hold at once (grid mode's page is the largest user).
MAX_LEASED_TASKS = 100
# A skipped task is not handed back to the same annotator for this long.
SKIP_COOLDOWN = timedelta(minutes=10)
# The largest id a bigint column holds.
MAX_ID = 2**63 - 1
# Answers one bulk (grid) request may carry.
MAX_BULK_ANSWERS = 200
# The annotator page's batch counts may be this stale; computing them scans the open batches.
PROGRESS_CACHE_SECONDS = 5


# --- projects and taxonomy --------------------------------------------------------------------


def create_project(*, created_by: AbstractBaseUser, fields: dict[str, Any], choices: list[dict[str, Any]]) -> Project:
    """Create a project with its taxonomy; the creator becomes its owner."""
    with transaction.atomic():
        project = Project.objects.create(created_by=created_by, **fields)
        Membership.objects.create(project=project, user=created_by, role=Role.OWNER)
        _replace_choices(project, choices)
    return project


def update_project(*, project: Project, fields: dict[str, Any], choices: list[dict[str, Any]] | None) -> Project:
    """Update settings and, when `choices` is given, the whole taxonomy in the given order.

    Choices are matched to existing ones by `id`, else by label, and updated in place so answers keep
    pointing at them. A choice left out is deleted, unless answers use it (409: keep it or relabel first).
    """
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        for name, value in fields.items():
            setattr(project, name, value)
        project.save()
        if choices is not None:
            _replace_choices(project, choices)
    return project


def _replace_choices(project: Project, choices: list[dict[str, Any]]) -> None:
    existing = {c.id: c for c in project.choices.all()}
    by_label = {c.label: c for c in existing.values()}
    keep: list[tuple[Choice | None, dict[str, Any]]] = []
    for data in choices:
        match = existing.get(data.get("id")) if data.get("id") else by_label.get(data["label"])
        if data.get("id") and match is None:
            raise InvalidInput(f"choice id {data['id']} does not belong to this project; leave id out to add a choice")
        keep.append((match, data))
    kept_ids = {c.id for c, _ in keep if c is not None}
    removed = [c for c in existing.values() if c.id not in kept_ids]
    if removed:
        used = set(
            Annotation.objects.filter(choice__in=removed).values_list("choice__label", flat=True).distinct()
        ) | set(Task.objects.filter(Q(final_choice__in=removed) | Q(gold_choice__in=removed)).values_list(
            "final_choice__label", flat=True
        ).distinct())
        used.discard(None)
        if used:
            raise Conflict(
                f"choices {sorted(used)} already have answers and cannot be removed; keep them (you may rename them)",
                code="choice_in_use",
            )
        Choice.objects.filter(id__in=[c.id for c in removed]).delete()
    # Hotkeys and labels are unique per project, so swapping two of them would trip the constraint
    # half-way: park the kept choices on placeholder values first, then write the real ones.
    for i, (choice, _data) in enumerate(keep):
        if choice is not None:
            Choice.objects.filter(pk=choice.pk).update(hotkey=chr(0xE000 + i), label=f"\ue000{i}")
    for order, (choice, data) in enumerate(keep):
        values = {
            "label": data["label"],
            "description": data.get("description", ""),
            "long_hint": data.get("long_hint", ""),
            "hotkey": data["hotkey"],
            "domain": data["domain"],
            "order": order,
        }
        if choice is None:
            Choice.objects.create(project=project, **values)
        else:
            Choice.objects.filter(pk=choice.pk).update(**values)


def add_member(*, project: Project, username: str, role: str) -> Membership:
    """Add an existing user to the project with `role`, or change the role of a member."""
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(
            f"no user named {username!r}; create the account first (admin, sign-up or `manage.py createuser`)"
        )
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            project=project, user=user, defaults={"role": role}
        )
        if not created and membership.role != role:
            if membership.role == Role.OWNER and _owner_count(project) == 1:
                raise Conflict("this is the project's last owner; add another owner first")
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def remove_member(*, project: Project, username: str) -> None:
    """Remove a member. Their answers stay; their open leases are released."""
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().filter(project=project, user__username=username).first()
        )
        if membership is None:
            raise NotFound(f"{username!r} is not a member of this project")
        if membership.role == Role.OWNER and _owner_count(project) == 1:
            raise Conflict("this is the project's last owner; add another owner first")
        Lease.objects.filter(task__project=project, annotator=membership.user).delete()
        membership.delete()


def _owner_count(project: Project) -> int:
    return project.memberships.filter(role=Role.OWNER).count()


def soft_delete_project(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())


# --- batches ----------------------------------------------------------------------------------


def _require_calibration(project: Project, action: str) -> None:
    if not project.calibration_approved:
        raise CalibrationRequired(
            f"cannot {action} a production batch before the project's calibration is approved: label a "
            "calibration batch, review it, then POST /api/v1/projects/{id}/approve-calibration/"
        )


def create_batch(*, project: Project, name: str, kind: str, created_by: AbstractBaseUser, callback_url: str = "") -> Batch:
    """Create an open batch. Production batches need an approved calibration first (409); a callback_url
    must be one a callback may reach, by the rules of URL ingestion (400)."""
    if callback_url:
        callback_url = webhooks.check_receiver_url(callback_url, field="callback_url")
    if kind == BatchKind.PRODUCTION:
        _require_calibration(project, "create")
    try:
        with transaction.atomic():
            return Batch.objects.create(
                project=project, name=name, kind=kind, created_by=created_by, callback_url=callback_url
            )
    except IntegrityError as exc:
        raise Conflict(f"this project already has a batch named {name!r}; choose another name", code="duplicate") from exc


def finalize_batch(*, batch: Batch) -> Batch:
    """Close a batch to uploads and hand its tasks to annotators (open → finalized)."""
    if batch.kind == BatchKind.PRODUCTION:
        _require_calibration(batch.project, "finalize")
    if not batch.tasks.alive().exists():
        raise Conflict("the batch has no tasks yet; upload images before finalizing", code="empty_batch")
    from . import quality

    with transaction.atomic():
        won = Batch.objects.filter(pk=batch.pk, status=BatchStatus.OPEN).update(
            status=BatchStatus.FINALIZED, finalized_at=timezone.now()
        )
        batch.refresh_from_db()
        if not won:
            raise IllegalTransition(f"batch is {batch.status}, not open; only an open batch can be finalized")
        quality.mix_gold(batch=batch)  # production batches get their share of gold tasks
    _maybe_mark_labeled(batch.pk)
    return batch


def _require_open(batch: Batch) -> None:
    if batch.status != BatchStatus.OPEN:
        raise IllegalTransition(f"batch is {batch.status}; images can only be added to an open batch")


# --- ingestion --------------------------------------------------------------------------------


def _result(name: str, status: str, *, task: Task | None = None, reason: str = "", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "status": status}
    if task is not None:
        row["task_id"] = task.pk
    if reason:
        row["reason"] = reason
    row.update(extra)
    return row


def _is_zip(name: str, head: bytes) -> bool:
    return name.lower().endswith(".zip") or head.startswith(b"PK\x03\x04")


def ingest_files(*, batch: Batch, files: Sequence[tuple[str, IO[bytes]]], metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Store uploaded images (or the images inside uploaded zips) as tasks of an open batch.

    Returns one row per item: created (with task_id), duplicate (the project already has this image;
    task_id is the existing task) or rejected (with a reason). A rejected item never stops the rest,
    and a failure after an image is stored leaves the asset for a retry rather than a half-made task.
    """
    _require_open(batch)
    results: list[dict[str, Any]] = []
    group: list[tuple[str, bytes | None, str]] = []
    held = 0
    for item in _upload_items(files):
        group.append(item)
        held += len(item[1] or b"")
        # Images are read one at a time (zip members as they are unpacked) and stored a group at a time:
        # a group ends at INGEST_GROUP images or INGEST_GROUP_BYTES, so an upload holds little in memory.
        if len(group) >= INGEST_GROUP or held >= INGEST_GROUP_BYTES:
            results.extend(_ingest_group(batch, group, metadata))
            group, held = [], 0
    results.extend(_ingest_group(batch, group, metadata))
    return results


INGEST_GROUP = 200
INGEST_GROUP_BYTES = 64 * 1024 * 1024


def _upload_items(files: Sequence[tuple[str, IO[bytes]]]) -> Iterator[tuple[str, bytes | None, str]]:
    """(name, bytes, "") per image, or (name, None, reason) per member refused before decoding."""
    for name, fileobj in files:
        head = fileobj.read(4)
        fileobj.seek(0)
        if _is_zip(name, head):
            for member in ingest.iter_zip(fileobj):
                yield member.name, member.data, member.reason
        else:
            yield name, fileobj.read(settings.INGEST_MAX_FILE_BYTES + 1), ""


def _ingest_group(batch: Batch, group: list[tuple[str, bytes | None, str]], metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Ingest a group of items with a few queries in one transaction (a commit per image would make
    the WAL flush the bottleneck). One task per image new to the project; the rest are duplicates."""
    wanted = [data for _name, data, _reason in group if data is not None]
    with transaction.atomic():
        stored = iter(ingest.store_many(wanted))
        outcomes = [next(stored) if data is not None else ingest.Rejected(reason) for _name, data, reason in group]
        asset_ids = {a.pk for a in outcomes if isinstance(a, Asset)}
        task_of_asset: dict[int, int] = {}
        for asset_id, task_id in (
            Task.objects.alive().filter(project_id=batch.project_id, asset_id__in=asset_ids).values_list("asset_id", "id")
        ):
            task_of_asset.setdefault(asset_id, task_id)
        new_tasks: dict[int, Task] = {}
        for (name, _data, _reason), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Asset) and outcome.pk not in task_of_asset and outcome.pk not in new_tasks:
                new_tasks[outcome.pk] = Task(project_id=batch.project_id, batch=batch, asset=outcome,
                                             source_name=name[:500], metadata=metadata or {})
        Task.objects.bulk_create(new_tasks.values())
        results = []
        for (name, _data, _reason), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, ingest.Rejected):
                results.append(_result(name, "rejected", reason=str(outcome)))
            elif outcome.pk in new_tasks:
                task = new_tasks.pop(outcome.pk)
                task_of_asset[outcome.pk] = task.pk
                results.append(_result(name, "created", task=task, sha256=outcome.sha256))
            else:
                results.append({"name": name, "status": "duplicate", "task_id": task_of_asset[outcome.pk], "sha256": outcome.sha256})
    return results


def ingest_urls(*, batch: Batch, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record URL tasks (status pending) and queue their downloads; idempotent by `unique_id`.

    Every item is answered: created, duplicate (its unique_id exists in the project, or appeared
    earlier in this request) or rejected (bad URL, bad metadata). The downloads run in Celery jobs
    after the transaction commits; a failed download marks its task failed with the reason.
    """
    _require_open(batch)
    if len(items) > settings.INGEST_MAX_URL_TASKS:
        raise InvalidInput(
            f"{len(items):,} tasks in one request is over the limit of {settings.INGEST_MAX_URL_TASKS:,}; send several requests"
        )
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: list[tuple[int, str | None, str, str]] = []  # (item index, unique_id, metadata JSON, url)
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            results[i] = _result(f"item {i}", "rejected", reason="each task must be an object with image_url")
            continue
        name = str(item.get("unique_id") or item.get("image_url") or f"item {i}")
        url = item.get("image_url")
        reason = _url_problem(url)
        unique_id = item.get("unique_id")
        metadata = item.get("metadata", {})
        if reason is None and unique_id is not None and (not isinstance(unique_id, str) or not 0 < len(unique_id) <= 255):
            reason = "unique_id must be a string of 1 to 255 characters"
        if reason is None and not isinstance(metadata, dict):
            reason = "metadata must be a JSON object"
        if reason is None:
            try:
                metadata_json = _compact_json(metadata)
            except ValueError:  # NaN or Infinity, which JSON (and jsonb) do not have
                reason = "metadata must be plain JSON (no NaN or Infinity)"
            else:
                reason = _text_problem(url + (unique_id or "") + metadata_json, metadata, metadata_json)
                metadata = metadata_json
        if reason:
            # The name echoes what was sent, which may hold what JSON cannot carry back (lone surrogates).
            results[i] = _result(name.encode("utf-8", "replace").decode(), "rejected", reason=reason)
            continue
        if unique_id is not None:
            if unique_id in seen:
                results[i] = _result(name, "duplicate", reason=f"unique_id repeated in this request (item {seen[unique_id]})")
                continue
            seen[unique_id] = i
        pending.append((i, unique_id, metadata, url))
    with transaction.atomic():
        # One ingest at a time per project, so "does this unique_id exist?" cannot race.
        Project.objects.select_for_update().filter(pk=batch.project_id).values_list("id").get()
        # Optimistic: most requests repeat no unique_id, so insert first and let the unique index check;
        # only when it finds a repeat is the savepoint undone, the repeats looked up and the rest inserted.
        fresh = pending
        try:
            with transaction.atomic():
                task_ids = _insert_url_tasks(batch, [row[1:] for row in fresh])
        except IntegrityError:
            ids = [unique_id for _, unique_id, _, _ in pending if unique_id is not None]
            existing = _existing_unique_ids(batch.project_id, ids)
            fresh = []
            for row in pending:
                if row[1] in existing:
                    results[row[0]] = {"name": row[1], "status": "duplicate", "task_id": existing[row[1]]}
                else:
                    fresh.append(row)
            task_ids = _insert_url_tasks(batch, [row[1:] for row in fresh])
        for (i, unique_id, _, url), task_id in zip(fresh, task_ids, strict=True):
            results[i] = {"name": unique_id or url, "status": "created", "task_id": task_id}
        if task_ids:
            transaction.on_commit(lambda: _enqueue_downloads(task_ids))
    return [r for r in results if r is not None]


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _existing_unique_ids(project_id: int, unique_ids: list[str]) -> dict[str, int]:
    """{unique_id: task id} for those of `unique_ids` the project already has."""
    existing: dict[str, int] = {}
    for start in range(0, len(unique_ids), 5000):
        chunk = unique_ids[start : start + 5000]
        existing.update(Task.objects.filter(project_id=project_id, unique_id__in=chunk).values_list("unique_id", "id"))
    return existing


def _insert_url_tasks(batch: Batch, rows: list[tuple[str | None, str, str]]) -> list[int]:
    """Insert pending URL tasks (unique_id, metadata as JSON text, url) and return their ids, in order.

    On PostgreSQL this skips the ORM's per-object work: the ids are taken from the table's sequence
    in one query, and the rows stream in with one COPY (a multi-row INSERT spends most of its time
    parsing and planning the VALUES list). The tasks of one request share every column but those
    three, so the shared values are prepared once from a prototype task. Other databases take
    bulk_create.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        tasks = [
            Task(project_id=batch.project_id, batch=batch, status=TaskStatus.PENDING, unique_id=unique_id,
                 metadata=json.loads(metadata), source_url=url)
            for unique_id, metadata, url in rows
        ]
        Task.objects.bulk_create(tasks, batch_size=2000)
        return [t.pk for t in tasks]

    import psycopg2  # the PostgreSQL driver; only this branch needs it

    prototype = Task(project_id=batch.project_id, batch=batch, status=TaskStatus.PENDING, created_at=timezone.now())
    table = Task._meta.db_table
    fields = [f for f in Task._meta.concrete_fields if f.attname not in ("unique_id", "metadata", "source_url")]
    shared = "\t".join(_copy_value(f.get_db_prep_save(getattr(prototype, f.attname), connection)) for f in fields if not f.primary_key)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields if not f.primary_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        cursor.execute("SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)", [sequence, len(rows)])
        (ids,) = cursor.fetchone()
        # Escaping is needed only where a value holds a backslash, tab or line break: check the whole
        # request once and skip the per-value work when none does (URLs and plain metadata never do).
        everything = "".join(f"{unique_id or ''}{metadata}{url}" for unique_id, metadata, url in rows)
        escape = _copy_value if any(char in everything for char in "\\\t\n\r") else _copy_plain_text
        lines = (
            f"{pk}\t{escape(unique_id)}\t{escape(metadata)}\t{escape(url)}\t{shared}\n"
            for pk, (unique_id, metadata, url) in zip(ids, rows, strict=True)
        )
        try:
            cursor.cursor.copy_expert(
                f"COPY {connection.ops.quote_name(table)} (id, unique_id, metadata, source_url, {columns}) FROM STDIN",
                _LineReader(lines, rows_per_read=1000),
            )
        except psycopg2.IntegrityError as error:  # the raw cursor's errors are not Django's: translate
            raise IntegrityError(*error.args) from error
    return ids


class _LineReader:
    """A file for COPY FROM STDIN that formats its lines as the driver reads them, `rows_per_read` at a
    time, so the server parses and inserts the first rows while Python formats the next ones."""

    def __init__(self, lines: Iterator[str], rows_per_read: int) -> None:
        self.lines = lines
        self.rows_per_read = rows_per_read

    def read(self, size: int = -1) -> str:
        return "".join(itertools.islice(self.lines, self.rows_per_read))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    """One value in COPY's text format: \\N for NULL, t/f for booleans, escaped text otherwise."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_plain_text(value: str | None) -> str:
    """_copy_value for text known to hold no backslash, tab or line break."""
    return "\\N" if value is None else value


def _text_problem(text: str, metadata: dict[str, Any], metadata_json: str) -> str | None:
    """PostgreSQL text and jsonb hold neither NUL characters nor lone UTF-16 surrogates: say so per item.

    `text` is the item's strings with `metadata_json` (where JSON writes a NUL as \\u0000) among them.
    """
    if "\x00" in text or ("\\u0000" in metadata_json and _contains_nul(metadata)):
        return "image_url, unique_id and metadata must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "image_url, unique_id and metadata must be valid Unicode (no lone surrogates)"
    return None


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return "image_url is required"
    if len(url) > 2000:
        return "image_url is longer than 2000 characters"
    if not url.startswith(("http://", "https://")):
        return "image_url must start with http:// or https://"
    return None


def _enqueue_downloads(task_ids: list[int]) -> None:
    from . import jobs  # jobs imports services; import here to keep the module graph one-way

    # One message from the request; the worker fans it out into download jobs of URL_JOB_CHUNK.
    jobs.queue_downloads.delay(task_ids)


def download_task_images(*, task_ids: Iterable[int]) -> None:
    """Fetch the images of pending URL tasks. A task is claimed by a conditional update, so a
    redelivered job skips what another already did; failures mark the task failed with the reason."""
    for task_id in task_ids:
        task = Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).only("id", "source_url").first()
        if task is None:
            continue
        try:
            data = ingest.fetch(task.source_url)
            asset, _ = ingest.store(data)
        except ingest.Rejected as exc:
            Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(status=TaskStatus.FAILED, error=str(exc)[:500])
            continue
        Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(asset=asset, status=TaskStatus.QUEUED)


def cancel_task(*, task: Task) -> Task:
    """Take a task out of the queue; its answers so far are kept."""
    won = Task.objects.filter(pk=task.pk, status__in=[TaskStatus.PENDING, TaskStatus.QUEUED]).update(
        status=TaskStatus.CANCELLED
    )
    task.refresh_from_db()
    if not won:
        raise IllegalTransition(f"task is {task.status}; only pending or queued tasks can be cancelled")
    Lease.objects.filter(task=task).delete()
    _maybe_mark_labeled(task.batch_id)
    return task


# --- leasing and answers ----------------------------------------------------------------------


def _membership_for_labeling(project: Project, annotator: AbstractBaseUser) -> Membership:
    membership = Membership.objects.filter(project=project, user=annotator).first()
    if membership is None:
        raise NotAllowed("you are not a member of this project")
    _labeling_membership_check(membership.pk, membership.paused_at, membership.paused_reason)
    return membership


def lease_next_task(*, project: Project | int, annotator: AbstractBaseUser) -> Task | None:
    """Lease the next task this annotator may answer, or return None when there is none.

    The single-task form of `lease_tasks`: an annotator's own unexpired lease is handed back first
    (a page reload resumes), otherwise a new task is leased.
    """
    tasks = lease_tasks(project=project, annotator=annotator, count=1)
    return tasks[0] if tasks else None


# The project's leasing settings and the caller's membership, in one read (plain SQL: every image runs it).
_LEASE_PROJECT_SQL = """
SELECT p.overlap, p.lease_seconds, m.id, m.paused_at, m.paused_reason
FROM labeling_project p
LEFT JOIN labeling_membership m ON m.project_id = p.id AND m.user_id = %s
WHERE p.id = %s AND p.deleted_at IS NULL
"""
# The database function leases; the same statement returns the leased tasks with their images.
_LEASE_CALL_SQL = """
SELECT t.id, t.project_id, t.batch_id, t.unique_id, t.metadata, t.created_at,
       a.id, a.sha256, a.width, a.height, a.format, a.byte_size, a.file, a.thumbnail
FROM winnow_lease_tasks(%s, %s, %s, %s, %s, %s, %s, %s) leased
JOIN labeling_task t ON t.id = leased.leased_task
LEFT JOIN labeling_asset a ON a.id = t.asset_id
ORDER BY t.batch_id, t.created_at, t.id
"""


def lease_tasks(*, project: Project | int, annotator: AbstractBaseUser, count: int) -> list[Task]:
    """Make sure the annotator holds up to `count` leased tasks and return them, oldest batch first.

    The annotator's own unexpired, unanswered leases come first and are renewed (so asking again is
    harmless: a page reload or a retried request gets the same tasks back). The rest are new: queued
    tasks they have not answered, nor skipped within `SKIP_COOLDOWN`, whose live answers plus other
    people's unexpired leases are under the project's overlap; the oldest batch goes first, so batches
    finish, and reach their audit, one after another. Candidate rows are taken with
    `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent annotators never wait on each other; the lease
    count is then re-read under the row lock, because the first query's subquery sees the snapshot
    taken when it started and may miss a lease committed just before the lock was granted.
    `project` may be a project's id (404 if there is no such live project). The tasks come with their
    assets loaded and `lease_expires_at` set.
    """
    if not 1 <= count <= MAX_LEASED_TASKS:
        raise InvalidInput(f"count must be between 1 and {MAX_LEASED_TASKS}")
    project_id = project if isinstance(project, int) else project.pk
    if not _is_id(project_id):
        raise NotFound(f"project {project_id} does not exist")
    with connection.cursor() as cursor:
        prepared.execute(cursor, "winnow_lease_project", _LEASE_PROJECT_SQL, [annotator.pk, project_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"project {project_id} does not exist")
    overlap, lease_seconds, member_id, paused_at, paused_reason = row
    _labeling_membership_check(member_id, paused_at, paused_reason)
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds)
    if connection.vendor == "postgresql" and settings.WINNOW_LEASE_IN_DATABASE:
        with connection.cursor() as cursor:
            prepared.execute(
                cursor, "winnow_lease_call", _LEASE_CALL_SQL,
                [project_id, annotator.pk, count, overlap, [str(s) for s in LABELABLE_BATCH_STATUSES],
                 now, expires, now - SKIP_COOLDOWN],
            )
            rows = cursor.fetchall()
        tasks = [_leased_task(row) for row in rows]
    else:
        tasks = _lease_with_orm(project_id=project_id, overlap=overlap, annotator=annotator, count=count, now=now,
                                expires=expires)
        tasks.sort(key=lambda t: (t.batch_id, t.created_at, t.pk))
    for task in tasks:
        task.lease_expires_at = expires  # type: ignore[attr-defined]
    return tasks


def _leased_task(row: tuple[Any, ...]) -> Task:
    """A task and its asset from one row of `_LEASE_CALL_SQL`."""
    task_id, project_id, batch_id, unique_id, metadata, created_at, asset_id, *asset = row
    task = loaded(Task, {
        "id": task_id, "project_id": project_id, "batch_id": batch_id, "asset_id": asset_id, "unique_id": unique_id,
        "metadata": metadata, "created_at": created_at,
    })
    if asset_id is not None:
        sha256, width, height, image_format, byte_size, file, thumbnail = asset
        task.asset = loaded(Asset, {
            "id": asset_id, "sha256": sha256, "width": width, "height": height, "format": image_format,
            "byte_size": byte_size, "file": file, "thumbnail": thumbnail,
        })
    else:
        task.asset = None
    return task


def _lease_with_orm(*, project_id: int, overlap: int, annotator: AbstractBaseUser, count: int, now: datetime,
                    expires: datetime) -> list[Task]:
    """lease_tasks as ORM statements (the database function winnow_lease_tasks does the same in one call)."""
    answered_by_me = Exists(Annotation.objects.live().filter(task=OuterRef("pk"), annotator=annotator))
    queued = Task.objects.select_related("asset").filter(status=TaskStatus.QUEUED, deleted_at__isnull=True)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A lease is soft state: one lost in a crash just goes back to the pool, so don't wait for the WAL flush.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        batches = list(
            Batch.objects.alive()
            .filter(project_id=project_id, status__in=LABELABLE_BATCH_STATUSES)
            .order_by("id")
            .values_list("id", flat=True)
        )
        held = list(
            queued.filter(batch_id__in=batches, leases__annotator=annotator, leases__expires_at__gt=now)
            .exclude(answered_by_me)
            .order_by("batch_id", "created_at", "id")[:count]
        )
        if held:
            Lease.objects.filter(annotator=annotator, task__in=held).update(expires_at=expires)
        others = (
            Lease.objects.filter(task=OuterRef("pk"), expires_at__gt=now)
            .exclude(annotator=annotator)
            .values("task")
            .annotate(n=Count("id"))
            .values("n")
        )
        mine_or_skipped = Lease.objects.filter(task=OuterRef("pk"), annotator=annotator).filter(
            Q(expires_at__gt=now) | Q(skipped_at__gt=now - SKIP_COOLDOWN)
        )
        candidates = (
            queued.select_for_update(skip_locked=True, of=("self",))
            .exclude(answered_by_me)
            .exclude(Exists(mine_or_skipped))
            .alias(held=Coalesce(Subquery(others), Value(0)))
            .filter(annotation_count__lt=overlap + F("extra_answers") - F("held"))
            .order_by("created_at", "id")
        )
        fresh: list[Task] = []
        need = count - len(held)
        seen: list[int] = []  # rows this transaction already locked: taken, or full after all
        # One batch at a time: batch equality and (created_at, id) order are what the partial index
        # task_queued_idx serves, so the scan starts at the batch's first queued task and stops at the first fit.
        for batch_id in batches:
            while need > 0:
                chunk = list(candidates.filter(batch_id=batch_id).exclude(pk__in=seen)[:need])
                if not chunk:
                    break
                leased = dict(
                    Lease.objects.filter(task__in=chunk, expires_at__gt=now)
                    .exclude(annotator=annotator)
                    .values_list("task")
                    .annotate(n=Count("id"))
                )
                for task in chunk:
                    seen.append(task.pk)
                    if task.annotation_count + leased.get(task.pk, 0) < overlap + task.extra_answers:
                        fresh.append(task)
                        need -= 1
            if need <= 0:
                break
        # A row may exist from an expired or skipped lease: take it over.
        Lease.objects.bulk_create(
            [Lease(task=task, annotator=annotator, expires_at=expires) for task in fresh],
            update_conflicts=True,
            unique_fields=["task", "annotator"],
            update_fields=["expires_at", "skipped_at"],
        )
    return held + fresh


def _is_id(value: int) -> bool:
    """Whether `value` can be a row id; plain SQL with a larger number would fail in the database (a 500)."""
    return 0 < value <= MAX_ID


def _labeling_membership_check(member_id: int | None, paused_at: datetime | None, paused_reason: str) -> None:
    """Refuse a non-member (no membership row) or a paused annotator, from a membership row's fields."""
    if member_id is None:
        raise NotAllowed("you are not a member of this project")
    if paused_at is not None:
        raise NotAllowed(f"your labeling on this project is paused: {paused_reason or 'ask the owner'}", code="paused")


# The answer path's reads, as plain SQL: every image an annotator labels runs them, and building the
# same queries with the ORM cost more Python time than the database spent on them. Portable SQL
# (PostgreSQL and SQLite); `FOR UPDATE OF t` is added where the database has it.
_ANSWER_LOCK_SQL = """
SELECT t.project_id, t.batch_id, t.status, t.annotation_count, t.extra_answers, t.is_gold, t.gold_choice_id,
       t.decided_by, t.callback_url, p.overlap, b.status, m.id, m.paused_at, m.paused_reason, c.id,
       EXISTS (SELECT 1 FROM labeling_webhook w WHERE w.project_id = t.project_id AND w.active)
FROM labeling_task t
JOIN labeling_project p ON p.id = t.project_id
JOIN labeling_batch b ON b.id = t.batch_id
LEFT JOIN labeling_membership m ON m.project_id = t.project_id AND m.user_id = %s
LEFT JOIN labeling_choice c ON c.id = %s AND c.project_id = t.project_id
WHERE t.id = %s AND t.deleted_at IS NULL
"""
# Read after the row lock is granted, in a statement of its own: under READ COMMITTED a statement
# sees what was committed before it started, so answers and leases committed by the transaction
# the lock waited for (a double click, a retry) are seen here, not missed.
_ANSWER_STATE_SQL = """
SELECT 'answer', a.id, a.choice_id, a.annotator_id, NULL FROM labeling_annotation a
WHERE a.task_id = %s AND a.discarded_at IS NULL
UNION ALL
SELECT 'lease', l.id, NULL, l.annotator_id, l.expires_at FROM labeling_lease l
WHERE l.task_id = %s AND l.annotator_id = %s
"""


def submit_annotation(
    *, task: Task | int, annotator: AbstractBaseUser, choice_id: int, duration_ms: int
) -> tuple[Annotation, bool]:
    """Record an annotator's answer. Returns (annotation, created).

    Idempotent: a retried or double-clicked submit of the same answer returns the first one. Takes a
    row lock on the task, so answers and lease checks for one task are serialised. Refused (nothing
    stored): a choice from another project (400), no lease or an expired lease that another
    annotator now holds (409), a task that is no longer queued (409), a different answer to a task
    already answered (409: undo it first). `task` may be a task's id (404 if there is no such live
    task). Every image labeled runs this, so its statements are plain SQL: the lock with everything
    that cannot race (project, batch, membership, choice), the answers and lease read after the lock,
    the insert, the lease release, the task update, the commit.
    """
    task_id = task if isinstance(task, int) else task.pk
    if not _is_id(task_id):
        raise NotFound(f"task {task_id} does not exist")
    if not _is_id(choice_id):
        raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
    # Inside a caller's transaction the callbacks below wait for its commit, so the batch check also runs inside.
    in_outer_transaction = connection.in_atomic_block
    lock = " FOR UPDATE OF t" if connection.features.has_select_for_update_of else ""
    with transaction.atomic(), connection.cursor() as cursor:
        prepared.execute(cursor, "winnow_answer_lock" + ("_for_update" if lock else ""), _ANSWER_LOCK_SQL + lock,
                         [annotator.pk, choice_id, task_id])
        row = cursor.fetchone()
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        (project_id, batch_id, status, count, extra, is_gold, gold_choice_id, decided_by, callback_url, overlap,
         batch_status, member_id, paused_at, paused_reason, choice_ok, hooked) = row
        _labeling_membership_check(member_id, paused_at, paused_reason)
        if choice_ok is None:
            raise InvalidInput(f"choice {choice_id} is not one of this project's choices", code="bad_choice")
        prepared.execute(cursor, "winnow_answer_state", _ANSWER_STATE_SQL, [task_id, task_id, annotator.pk])
        answers: list[int] = []
        lease: tuple[int, datetime] | None = None
        for kind, pk, answer_choice, by, expires_at in cursor.fetchall():
            if kind == "lease":
                lease = (pk, expires_at)
                continue
            if by == annotator.pk:
                if answer_choice == choice_id:
                    existing = loaded(
                        Annotation, {"id": pk, "task_id": task_id, "annotator_id": by, "choice_id": answer_choice}
                    )
                    return existing, False
                label = Choice.objects.filter(pk=answer_choice).values_list("label", flat=True).first()
                raise Conflict(
                    f"you already answered this task with {label!r}; undo it to change your answer",
                    code="already_answered",
                )
            answers.append(answer_choice)
        if status != TaskStatus.QUEUED:
            raise Conflict(f"task is {status}, no longer taking answers", code="task_closed")
        now = timezone.now()
        if lease is None:
            raise LeaseExpired("you hold no lease on this task; ask for the next task first")
        if convert(Lease._meta.get_field("expires_at"), lease[1]) <= now:
            held = Lease.objects.filter(task_id=task_id, expires_at__gt=now).exclude(annotator=annotator).count()
            if count + held >= overlap + extra:
                raise LeaseExpired("your lease on this task expired and it was given to someone else; take the next task")
        duration_ms = max(0, min(duration_ms, 24 * 3600 * 1000))
        prepared.execute(
            cursor, "winnow_answer_insert",
            "INSERT INTO labeling_annotation (task_id, annotator_id, choice_id, duration_ms, created_at, discarded_at)"
            " VALUES (%s, %s, %s, %s, %s, NULL) RETURNING id",
            [task_id, annotator.pk, choice_id, duration_ms, _db_datetime(now)],
        )
        annotation = loaded(Annotation, {
            "id": cursor.fetchone()[0], "task_id": task_id, "annotator_id": annotator.pk, "choice_id": choice_id,
            "duration_ms": duration_ms, "created_at": now, "discarded_at": None,
        })
        cursor.execute("DELETE FROM labeling_lease WHERE id = %s", [lease[0]])
        # The row lock makes the count read above exact, so the new count is written as a value.
        task = loaded(Task, {
            "id": task_id, "project_id": project_id, "batch_id": batch_id, "status": status, "annotation_count": count + 1,
            "extra_answers": extra, "is_gold": bool(is_gold), "gold_choice_id": gold_choice_id, "decided_by": decided_by,
            "callback_url": callback_url,
        })
        resolve_task(task=task, answers=[*answers, choice_id], overlap=overlap, save=["annotation_count"])
        if is_gold:
            from . import quality

            quality.check_annotator(project=Project.objects.get(pk=project_id), annotator=annotator)
        if task.status == TaskStatus.COMPLETED:
            if hooked or callback_url:  # emit() would find no receiver otherwise: save its query
                webhooks.task_completed(task)
            # Checked after commit: two annotators finishing the last two tasks at once each see the other's
            # task still open inside their transactions, but the later commit's check sees both done.
            if in_outer_transaction:
                _mark_labeled_if_done(batch_id)
            transaction.on_commit(lambda: _mark_labeled_if_done(batch_id))
        if batch_status == BatchStatus.FINALIZED:
            cursor.execute(
                "UPDATE labeling_batch SET status = %s WHERE id = %s AND status = %s",
                [BatchStatus.LABELING.value, batch_id, BatchStatus.FINALIZED.value],
            )
    return annotation, True


def resolve_task(
    *, task: Task, answers: list[int] | None = None, overlap: int | None = None, save: Sequence[str] = ()
) -> Task:
    """Recompute a task's answer from its live annotations (caller holds the task's row lock).

    The answer is the majority; agreement is the share who chose it. A task completes when it has
    `overlap` answers and no tie; a tie keeps it queued for one more annotator (up to twice overlap).
    `answers` (the live annotations' choice ids) saves reading them when the caller knows them;
    `overlap` (the project's) saves reading the project; `save` names fields the caller changed on
    `task`, written in the same UPDATE.
    """
    if answers is None:
        answers = list(Annotation.objects.live().filter(task=task).values_list("choice_id", flat=True))
    total = len(answers)
    update: dict[str, Any] = {}
    if total == 0:
        update = {"final_choice": None, "agreement": None, "decided_by": ""}
    else:
        vote = stats.majority(answers)
        tied = vote.tied
        update = {
            "final_choice_id": vote.answer,
            "agreement": vote.agreement,
            "decided_by": "" if tied else (DecidedBy.SINGLE if total == 1 else DecidedBy.CONSENSUS),
        }
        if overlap is None:
            overlap = task.project.overlap
        if task.status == TaskStatus.QUEUED and total >= overlap:
            if tied and total < 2 * overlap:
                # Ask one more annotator to break the tie.
                update["extra_answers"] = total - overlap + 1
            else:
                update.update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
    # The owner's gold answer and an audit's correction outrank any vote, now and after relabeling.
    if task.is_gold and task.gold_choice_id:
        update.update(final_choice_id=task.gold_choice_id, decided_by=DecidedBy.GOLD)
        update.pop("final_choice", None)
    elif task.decided_by == DecidedBy.AUDIT:
        for name in ("final_choice", "final_choice_id", "decided_by"):
            update.pop(name, None)
    for name, value in update.items():
        setattr(task, name, value)
    update.update({name: getattr(task, name) for name in save})
    _write_task(task.pk, update)
    return task


def _write_task(task_id: int, values: dict[str, Any]) -> None:
    """UPDATE one task's columns (field names or attnames) as one plain statement; the answer path runs it per image."""
    fields = [Task._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values(), strict=True)]
    with connection.cursor() as cursor:
        # Column names come from the model, never from a request.
        cursor.execute(f"UPDATE labeling_task SET {assignments} WHERE id = %s", [*params, task_id])  # noqa: S608


def _db_datetime(value: datetime) -> Any:
    """A datetime as this database's driver takes it in plain SQL (SQLite stores text)."""
    return Task._meta.get_field("created_at").get_db_prep_value(value, connection)


def _maybe_mark_labeled(batch_id: int) -> None:
    """Move a batch forward when answers arrive: finalized → labeling → labeled."""
    if not _mark_labeled_if_done(batch_id) and Annotation.objects.filter(task__batch_id=batch_id).exists():
        Batch.objects.filter(pk=batch_id, status=BatchStatus.FINALIZED).update(status=BatchStatus.LABELING)


# The statuses are written into the text (they are the models' constants), so the plan is the same for every batch.
_BATCH_LABELED_SQL = f"""
UPDATE labeling_batch SET status = '{BatchStatus.LABELED.value}', labeled_at = %s
WHERE id = %s AND status IN ({", ".join(f"'{s.value}'" for s in LABELABLE_BATCH_STATUSES)})
  AND NOT EXISTS (SELECT 1 FROM labeling_task t WHERE t.batch_id = %s AND t.deleted_at IS NULL
                  AND t.status IN ('{TaskStatus.PENDING.value}', '{TaskStatus.QUEUED.value}'))
"""  # noqa: S608 (no request data in the text)


def _mark_labeled_if_done(batch_id: int) -> bool:
    """Mark the batch labeled when it has no open task left: one conditional UPDATE, so it is cheap on every answer."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, "winnow_batch_labeled", _BATCH_LABELED_SQL, [_db_datetime(timezone.now()), batch_id, batch_id])
        won = cursor.rowcount == 1
    if won:  # the conditional update is won once, so the event is sent once
        webhooks.batch_labeled(batch_id)
    return won


# --- skip, undo, grid answers, progress --------------------------------------------------------


def skip_task(*, task: Task, annotator: AbstractBaseUser) -> Task:
    """Give a leased task back without answering it.

    The lease is released at once (others may take the task) and kept as a marker, so this
    annotator is not handed the same task again for `SKIP_COOLDOWN`. Skipping twice is harmless.
    Refused (409): no lease on the task, or the annotator already answered it (undo instead).
    """
    _membership_for_labeling(task.project, annotator)
    now = timezone.now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(task=task, annotator=annotator).first()
        if Annotation.objects.live().filter(task=task, annotator=annotator).exists():
            raise Conflict("you already answered this task; undo the answer instead of skipping", code="already_answered")
        if lease is None or (lease.skipped_at is None and lease.expires_at <= now):
            raise LeaseExpired("you hold no lease on this task, so there is nothing to skip; take the next task")
        if lease.skipped_at is None:
            Lease.objects.filter(pk=lease.pk).update(expires_at=now, skipped_at=now)
    return task


def undo_annotation(*, task: Task, annotator: AbstractBaseUser) -> Task:
    """Withdraw the annotator's own live answer to a task and lease the task back to them.

    Allowed while the answer is younger than the project's lease time (the lease it was given
    under would still be running) and the task is still open to answers: queued, or completed but
    not yet decided by the owner or an audit, in a batch that is not in audit. The answer is kept
    as discarded, the task re-queued and recomputed with `resolve_task`, a labeled batch goes back
    to labeling. Takes a row lock on the task. Refused (409, nothing changed) otherwise.
    """
    _membership_for_labeling(task.project, annotator)
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("project", "batch").get(pk=task.pk)
        annotation = Annotation.objects.live().filter(task=task, annotator=annotator).first()
        if annotation is None:
            raise Conflict("you have no answer on this task to undo", code="nothing_to_undo")
        now = timezone.now()
        window = timedelta(seconds=task.project.lease_seconds)
        if annotation.created_at + window <= now:
            raise Conflict(
                f"answers can be undone for {task.project.lease_seconds} s after they are given; this one is older",
                code="undo_window_closed",
            )
        if task.status not in (TaskStatus.QUEUED, TaskStatus.COMPLETED) or task.decided_by in (
            DecidedBy.GOLD, DecidedBy.AUDIT
        ):
            raise Conflict(f"task is {task.status} and decided by {task.decided_by or 'nobody'}; it can no longer change",
                           code="task_closed")
        if task.batch.status not in (*LABELABLE_BATCH_STATUSES, BatchStatus.LABELED):
            raise Conflict(f"batch {task.batch.name!r} is {task.batch.status}; its answers can no longer be undone",
                           code="batch_closed")
        Annotation.objects.filter(pk=annotation.pk).update(discarded_at=now)
        Task.objects.filter(pk=task.pk).update(
            annotation_count=F("annotation_count") - 1, status=TaskStatus.QUEUED, completed_at=None
        )
        task.refresh_from_db(fields=["annotation_count", "status", "completed_at"])
        Lease.objects.update_or_create(
            task=task, annotator=annotator,
            defaults={"expires_at": now + window, "skipped_at": None},
        )
        Batch.objects.filter(pk=task.batch_id, status=BatchStatus.LABELED).update(
            status=BatchStatus.LABELING, labeled_at=None
        )
        resolve_task(task=task)
        if task.status == TaskStatus.COMPLETED:  # the remaining answers still decide it
            _maybe_mark_labeled(task.batch_id)
    task.lease_expires_at = now + window  # type: ignore[attr-defined]
    return task


def submit_answers(*, project: Project, annotator: AbstractBaseUser, answers: list[Any]) -> list[dict[str, Any]]:
    """Record many answers at once (grid mode), each exactly as `submit_annotation` would.

    Every item is answered on its own, in its own transaction: created, duplicate (the same answer
    was already recorded: a retried request) or rejected with the reason and a stable code. One bad
    item never stops the others. Refused as a whole only when the list is empty or too long, or the
    annotator may not label in this project.
    """
    if not isinstance(answers, list) or not answers:
        raise InvalidInput('send a non-empty list: {"answers": [{"task": 1, "choice": 2, "duration_ms": 800}]}')
    if len(answers) > MAX_BULK_ANSWERS:
        raise InvalidInput(f"{len(answers)} answers in one request is over the limit of {MAX_BULK_ANSWERS}")
    _membership_for_labeling(project, annotator)
    ids = [a.get("task") for a in answers if isinstance(a, dict) and isinstance(a.get("task"), int)]
    tasks = {t.pk: t for t in Task.objects.alive().filter(project=project, pk__in=ids).select_related("project")}
    results: list[dict[str, Any]] = []
    for i, item in enumerate(answers):
        problem = _answer_problem(item)
        if problem:
            results.append({"index": i, "task": item.get("task") if isinstance(item, dict) else None,
                            "status": "rejected", "code": "invalid", "detail": problem})
            continue
        task = tasks.get(item["task"])
        if task is None:
            results.append({"index": i, "task": item["task"], "status": "rejected", "code": "not_found",
                            "detail": f"task {item['task']} is not a task of this project"})
            continue
        try:
            annotation, created = submit_annotation(
                task=task, annotator=annotator, choice_id=item["choice"], duration_ms=item.get("duration_ms", 0)
            )
        except DomainError as exc:
            results.append({"index": i, "task": task.pk, "status": "rejected", "code": exc.code, "detail": exc.message})
            continue
        results.append({"index": i, "task": task.pk, "status": "created" if created else "duplicate",
                        "annotation": annotation.pk, "choice": annotation.choice_id})
    return results


def _answer_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "each answer must be an object with task, choice and duration_ms"
    for name in ("task", "choice"):
        if not isinstance(item.get(name), int) or isinstance(item.get(name), bool):
            return f"{name} must be an id (an integer)"
    duration = item.get("duration_ms", 0)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        return "duration_ms must be a whole number of milliseconds, 0 or more"
    return None


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict[str, Any]:
    """What the annotator page shows: the open batches' done and remaining tasks, and my answers.

    The batch counts are shared by every annotator of the project and cost a scan of its open
    batches, so they are cached for `PROGRESS_CACHE_SECONDS`; the annotator's own count is exact.
    `gold_accuracy` is the annotator's gold accuracy as a share, in whole blocks of gold answers
    (`quality.shown_gold_accuracy`); None before the first block.
    """
    key = f"winnow:progress:{project.pk}"
    batches = cache.get(key)
    if batches is None:
        rows = (
            Task.objects.alive()
            .filter(project=project, batch__status__in=(*LABELABLE_BATCH_STATUSES, BatchStatus.LABELED))
            .values_list("batch_id", "status")
            .annotate(n=Count("id"))
        )
        per_batch: dict[int, dict[str, int]] = {}
        for batch_id, status, n in rows:
            counts = per_batch.setdefault(batch_id, {"done": 0, "remaining": 0})
            if status == TaskStatus.COMPLETED:
                counts["done"] += n
            elif status in (TaskStatus.QUEUED, TaskStatus.PENDING):
                counts["remaining"] += n
        names = dict(Batch.objects.filter(pk__in=per_batch).values_list("id", "name"))
        batches = [
            {"id": batch_id, "name": names.get(batch_id, ""), **counts, "total": counts["done"] + counts["remaining"]}
            for batch_id, counts in sorted(per_batch.items())
        ]
        cache.set(key, batches, PROGRESS_CACHE_SECONDS)
    return {
        "mine": Annotation.objects.live().filter(task__project=project, annotator=annotator).count(),
        "done": sum(b["done"] for b in batches),
        "remaining": sum(b["remaining"] for b in batches),
        "batches": batches,
        "gold_accuracy": _gold_accuracy(project, annotator),
    }


def _gold_accuracy(project: Project, annotator: AbstractBaseUser) -> float | None:
    """The share the annotator page shows; `GET …/me/` has the whole figure (recent, answers)."""
    from . import quality

    shown = quality.shown_gold_accuracy(project=project, annotator=annotator)
    return shown["overall"] if shown else None


def approve_calibration(*, project: Project) -> Project:
    """Open the project to production batches once a calibration batch is labeled and reviewed (has gold)."""
    labeled = project.batches.alive().filter(
        kind=BatchKind.CALIBRATION, status__in=[BatchStatus.LABELED, BatchStatus.AUDITED, BatchStatus.ACCEPTED]
    )
    if not labeled.exists():
        raise Conflict(
            "no labeled calibration batch yet: upload a calibration batch, finalize it and have it labeled first",
            code="calibration_not_labeled",
        )
    if not Task.objects.alive().filter(project=project, is_gold=True, batch__kind=BatchKind.CALIBRATION).exists():
        raise Conflict(
            "review the calibration answers first: confirm or correct them (POST /api/v1/tasks/{id}/gold/) so "
            "production batches have gold tasks to score annotators with",
            code="calibration_not_reviewed",
        )
    Project.objects.filter(pk=project.pk, calibration_approved_at__isnull=True).update(calibration_approved_at=timezone.now())
    project.refresh_from_db()
    return project


def demo_image(seed: int, size: int = 96) -> bytes:
    """A small generated PNG, for the demo project and tests: a gradient with a seeded colour block."""
    from PIL import Image, ImageDraw

    r, g, b = (seed * 67) % 256, (seed * 131) % 256, (seed * 199) % 256
    image = Image.new("RGB", (size, size), (r, g, b))
    draw = ImageDraw.Draw(image)
    for y in range(0, size, 4):
        draw.line([(0, y), (size, y)], fill=((r + y) % 256, (g + 2 * y) % 256, b))
    draw.rectangle([seed % (size // 2), seed % (size // 3), size // 2 + seed % 20, size // 2 + seed % 30], fill=(b, r, g))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()

