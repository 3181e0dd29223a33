"""Uploads become tasks: files and zips (stored through `assets`), and URL lists (one COPY, fetched by a worker).

Every item of an upload is answered on its own (created, duplicate or rejected with a reason) and a
bad one never stops the rest.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from winnow.exceptions import Conflict, IllegalTransition, InvalidInput

from . import assets, duplicates, features, webhooks
from .answers import advance_batch
from .models import (
    Asset,
    Batch,
    Lease,
    Project,
    Task,
    TaskStatus,
)
from .projects import require_open

URL_JOB_CHUNK = 100


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
    require_open(batch)
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
    if any(r["status"] == "created" for r in results):
        features.schedule_after_ingest(batch.project_id)
    return results


INGEST_GROUP = 200
INGEST_GROUP_BYTES = 64 * 1024 * 1024


def _upload_items(files: Sequence[tuple[str, IO[bytes]]]) -> Iterator[tuple[str, bytes | None, str]]:
    """(name, bytes, "") per image, or (name, None, reason) per member refused before decoding."""
    for name, fileobj in files:
        head = fileobj.read(4)
        fileobj.seek(0)
        if _is_zip(name, head):
            for member in assets.iter_zip(fileobj):
                yield member.name, member.data, member.reason
        else:
            yield name, fileobj.read(settings.INGEST_MAX_FILE_BYTES + 1), ""


def _ingest_group(batch: Batch, group: list[tuple[str, bytes | None, str]], metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Ingest a group of items with a few queries in one transaction (a commit per image would make
    the WAL flush the bottleneck). One task per image new to the project; the rest are duplicates."""
    wanted = [data for _name, data, _reason in group if data is not None]
    with transaction.atomic():
        stored = iter(assets.store_many(wanted))
        outcomes = [next(stored) if data is not None else assets.Rejected(reason) for _name, data, reason in group]
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
        # Near-duplicates by perceptual hash: each new image against the project's (and this upload's).
        near = duplicates.find_by_hash(project_id=batch.project_id, assets=[t.asset for t in new_tasks.values()])
        near_task = _first_tasks(batch.project_id, {a for a, _ in near.values()})
        results = []
        for (name, _data, _reason), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, assets.Rejected):
                results.append(_result(name, "rejected", reason=str(outcome)))
            elif outcome.pk in new_tasks:
                task = new_tasks.pop(outcome.pk)
                task_of_asset[outcome.pk] = task.pk
                extra = {}
                if outcome.pk in near and near[outcome.pk][0] in near_task:
                    extra = {"near_duplicate_of": near_task[near[outcome.pk][0]], "near_duplicate_bits": near[outcome.pk][1]}
                results.append(_result(name, "created", task=task, sha256=outcome.sha256, **extra))
            else:
                results.append({"name": name, "status": "duplicate", "task_id": task_of_asset[outcome.pk], "sha256": outcome.sha256})
    return results


def _first_tasks(project_id: int, asset_ids: set[int]) -> dict[int, int]:
    """{asset id: the project's first live task with that image}."""
    first: dict[int, int] = {}
    rows = Task.objects.alive().filter(project_id=project_id, asset_id__in=asset_ids).order_by("id")
    for asset_id, task_id in rows.values_list("asset_id", "id"):
        first.setdefault(asset_id, task_id)
    return first


def ingest_urls(*, batch: Batch, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record URL tasks (status pending) and queue their downloads; idempotent by `unique_id`.

    Every item is answered: created, duplicate (its unique_id exists in the project, or appeared
    earlier in this request) or rejected (bad URL, bad metadata). The downloads run in Celery jobs
    after the transaction commits; a failed download marks its task failed with the reason.
    """
    require_open(batch)
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

    This skips the ORM's per-object work: the ids are taken from the table's sequence
    in one query, and the rows stream in with one COPY (a multi-row INSERT spends most of its time
    parsing and planning the VALUES list). The tasks of one request share every column but those
    three, so the shared values are prepared once from a prototype task.
    """
    if not rows:
        return []
    import psycopg2

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
    stored: dict[int, list[Asset]] = {}
    for task_id in task_ids:
        task = Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).only("id", "project_id", "source_url").first()
        if task is None:
            continue
        try:
            data = assets.fetch(task.source_url)
            asset, _ = assets.store(data)
        except assets.Rejected as exc:
            Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(status=TaskStatus.FAILED, error=str(exc)[:500])
            continue
        if Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(asset=asset, status=TaskStatus.QUEUED):
            stored.setdefault(task.project_id, []).append(asset)
    for project_id, images in stored.items():  # near-duplicates by hash; then embed the new images
        duplicates.find_by_hash(project_id=project_id, assets=images)
        features.schedule_after_ingest(project_id)


def cancel_task(*, task: Task, clear_unique_id: bool = False) -> Task:
    """Take a task out of the queue; its answers so far are kept. `clear_unique_id` frees its unique_id
    for a new task (Scale's `clear_unique_id`)."""
    extra: dict[str, Any] = {"unique_id": None} if clear_unique_id else {}
    won = Task.objects.filter(pk=task.pk, status__in=[TaskStatus.PENDING, TaskStatus.QUEUED]).update(
        status=TaskStatus.CANCELLED, **extra
    )
    task.refresh_from_db()
    if not won:
        raise IllegalTransition(f"task is {task.status}; only pending or queued tasks can be cancelled")
    Lease.objects.filter(task=task).delete()
    advance_batch(task.batch_id)
    return task


_UNSET: Any = object()


def edit_task(*, task: Task, unique_id: str | None = _UNSET, metadata: dict[str, Any] = _UNSET,
              callback_url: str = _UNSET) -> Task:
    """Change what the uploader said about a task: its unique_id (None frees it; 409 when another task
    of the project has it), its metadata, its callback_url (checked as a receiver URL, 400)."""
    values: dict[str, Any] = {}
    if unique_id is not _UNSET:
        values["unique_id"] = unique_id
    if metadata is not _UNSET:
        values["metadata"] = metadata
    if callback_url is not _UNSET:
        values["callback_url"] = webhooks.check_receiver_url(callback_url, field="callback_url") if callback_url else ""
    try:
        with transaction.atomic():
            Task.objects.filter(pk=task.pk).update(**values)
    except IntegrityError as exc:
        raise Conflict(f"another task of this project has unique_id {unique_id!r}", code="duplicate") from exc
    for name, value in values.items():
        setattr(task, name, value)
    return task
