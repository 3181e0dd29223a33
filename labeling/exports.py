"""Streaming exports: every task of a project with its image, answers and status.

Rows are read in keyset-paginated chunks of plain values (no model instances), with one query for
the chunk's annotations, so memory stays flat however many tasks a project has.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import secrets
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from winnow import jobs as background
from winnow import media
from winnow.files import ZipStream, copy_into

from .exceptions import IllegalTransition, InvalidInput
from .models import Annotation, Asset, Audit, Batch, Export, ExportStatus, Project, Split, SplitStatus, Task

log = logging.getLogger(__name__)

CHUNK = 2000


def _media(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{settings.MEDIA_URL.strip('/')}/{name}"


def task_rows(*, project: Project, base_url: str, batch_id: Any = None) -> Iterator[dict[str, Any]]:
    """Yield one dict per live task of `project` (optionally of one batch), in id order."""
    choices = {c.id: c.label for c in project.choices.all()}
    users = dict(get_user_model().objects.filter(memberships__project=project).values_list("id", "username"))
    batches = dict(project.batches.values_list("id", "name"))
    tasks = Task.objects.alive().filter(project=project)
    if batch_id is not None:
        tasks = tasks.filter(batch_id=batch_id)
    # Metadata comes as the database's JSON text, not decoded: the JSON formats splice it in as it is,
    # which saves decoding and re-encoding every task's metadata (a third of an export's time).
    tasks = tasks.annotate(metadata_text=Cast("metadata", TextField()))
    fields = (
        "id", "unique_id", "batch_id", "status", "error", "metadata_text", "source_url", "source_name",
        "final_choice_id", "decided_by", "agreement", "is_gold", "gold_choice_id", "created_at", "completed_at",
        "asset__sha256", "asset__file", "asset__width", "asset__height", "asset__format", "asset__byte_size",
    )
    media = _media(base_url, "")
    last_id = 0
    while True:
        # Plain tuples, not model instances or dicts: this loop is the export's hot path.
        chunk = list(tasks.filter(id__gt=last_id).order_by("id").values_list(*fields)[:CHUNK])
        if not chunk:
            return
        first_id, last_id = chunk[0][0], chunk[-1][0]
        # The chunk's answers and audits by task id range when the chunk's ids are dense (tasks arrive in
        # batches, so they usually are): two integer bounds instead of thousands of IN parameters, which
        # cost more to build and plan than the rows cost to read. Rows of other projects' tasks that fall
        # inside the range are never looked up below.
        if last_id - first_id < 4 * len(chunk):
            in_chunk = {"task_id__gte": first_id, "task_id__lte": last_id}
        else:
            in_chunk = {"task_id__in": [t[0] for t in chunk]}
        answers: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for task_id, annotator_id, choice_id, duration_ms, created_at in (
            Annotation.objects.live()
            .filter(**in_chunk)
            .order_by("task_id", "id")
            .values_list("task_id", "annotator_id", "choice_id", "duration_ms", "created_at")
        ):
            answers[task_id].append(
                {
                    "annotator_id": annotator_id,
                    "annotator": users.get(annotator_id),
                    "choice": choices.get(choice_id),
                    "duration_ms": duration_ms,
                    "created_at": created_at.isoformat(),
                }
            )
        audits: dict[int, dict[str, Any]] = {}
        for task_id, round_, verdict, corrected_id, reviewer_id in (
            Audit.objects.filter(**in_chunk)
            .order_by("task_id", "round")
            .values_list("task_id", "round", "verdict", "corrected_choice_id", "reviewer_id")
        ):
            # Ordered by round, so the latest round's verdict is the one kept.
            audits[task_id] = {"verdict": verdict, "corrected": choices.get(corrected_id),
                               "reviewer": users.get(reviewer_id), "round": round_}
        for (
            task_id, unique_id, batch, status, error, metadata, source_url, source_name, final_choice_id, decided_by,
            agreement, is_gold, gold_choice_id, created_at, completed_at, sha256, file, width, height, fmt, byte_size,
        ) in chunk:
            yield {
                "id": task_id,
                "unique_id": unique_id,
                "batch": {"id": batch, "name": batches.get(batch)},
                "status": status,
                "error": error or None,
                "image": {
                    "sha256": sha256,
                    "url": media + file if file else None,
                    "width": width,
                    "height": height,
                    "format": fmt,
                    "byte_size": byte_size,
                    "source_url": source_url or None,
                    "source_name": source_name or None,
                },
                "metadata": RawJSON(metadata),
                "answer": choices.get(final_choice_id),
                "decided_by": decided_by or None,
                "agreement": agreement,
                "is_gold": is_gold,
                "gold_answer": choices.get(gold_choice_id),
                "annotations": answers.get(task_id, []),
                "audit": audits.get(task_id),
                "created_at": created_at.isoformat(),
                "completed_at": completed_at.isoformat() if completed_at else None,
            }


class RawJSON(str):
    """JSON text as the database stored it (a task's metadata); `.value()` decodes it."""

    def value(self) -> Any:
        return json.loads(self)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _encode_row(row: dict[str, Any]) -> str:
    """A task row as one JSON object; its RawJSON metadata is spliced in as the object's last member."""
    metadata = row.pop("metadata")
    encoded = _encode(row)
    return f'{encoded[:-1]},"metadata":{metadata}}}'


def _ndjson(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer: list[str] = []
    for row in rows:
        buffer.append(_encode_row(row))
        if len(buffer) >= 500:
            yield ("\n".join(buffer) + "\n").encode()
            buffer.clear()
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def _json(rows: Iterator[dict[str, Any]], encode: Callable[[dict[str, Any]], str] = _encode_row) -> Iterator[bytes]:
    yield b"["
    first = True
    buffer: list[str] = []
    for row in rows:
        buffer.append(("" if first else ",") + encode(row))
        first = False
        if len(buffer) >= 500:
            yield "".join(buffer).encode()
            buffer.clear()
    yield ("".join(buffer) + "]").encode()


@dataclass(frozen=True)
class Writer:
    stream: Callable[[Iterator[dict[str, Any]]], Iterator[bytes]]
    content_type: str
    extension: str


WRITERS: dict[str, Writer] = {
    "json": Writer(_json, "application/json", "json"),
    "ndjson": Writer(_ndjson, "application/x-ndjson", "ndjson"),
}


# --- more formats: CSV, Label Studio, ImageFolder zip --------------------------------------------
# Each consumes the same `task_rows` stream as JSON and NDJSON, so every format streams in flat memory.

CSV_COLUMNS = [
    "id", "unique_id", "batch_id", "batch", "status", "answer", "decided_by", "agreement", "is_gold", "gold_answer",
    "annotation_count", "annotators", "audit_verdict", "audit_corrected", "image_url", "sha256", "width", "height", "format", "source_url", "source_name",
    "error", "metadata", "created_at", "completed_at",
]
# Spreadsheets run a cell that starts with one of these as a formula; file names and ids come from uploaders.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_metadata(metadata: RawJSON) -> str:
    return "" if metadata == "{}" else metadata  # the stored JSON text; an empty cell for no metadata


def _csv_values(row: dict[str, Any]) -> list[Any]:
    image = row["image"]
    answers = row["annotations"]
    return [_csv_cell(v) for v in (
        row["id"], row["unique_id"], row["batch"]["id"], row["batch"]["name"], row["status"], row["answer"],
        row["decided_by"], row["agreement"], row["is_gold"], row["gold_answer"], len(answers),
        ";".join(f"{a['annotator']}={a['choice']}" for a in answers),
        (row.get("audit") or {}).get("verdict"), (row.get("audit") or {}).get("corrected"), image["url"], image["sha256"], image["width"],
        image["height"], image["format"], image["source_url"], image["source_name"], row["error"],
        _csv_metadata(row["metadata"]), row["created_at"], row["completed_at"],
    )]


class _Lines:
    """A write-only buffer for csv.writer: what it writes is taken out in pieces."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode()
        self.parts.clear()
        return data


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = _Lines()
    writer = csv.writer(buffer)
    # A byte-order mark, so spreadsheet programs read the file as UTF-8 (labels and names may not be ASCII).
    buffer.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(_csv_values(row))
        if n % 500 == 0:
            yield buffer.take()
    yield buffer.take()


# Label Studio: one task per image with `data.image`, each annotator's answer as an annotation whose result
# is a `choices` region, and Winnow's final answer as a prediction. The matching labeling config is
#   <View><Image name="image" value="$image"/><Choices name="choice" toName="image">…</Choices></View>
LABEL_STUDIO_FROM_NAME = "choice"
LABEL_STUDIO_TO_NAME = "image"


def _ls_result(label: str) -> list[dict[str, Any]]:
    return [{"type": "choices", "from_name": LABEL_STUDIO_FROM_NAME, "to_name": LABEL_STUDIO_TO_NAME,
             "origin": "manual", "value": {"choices": [label]}}]


def _signed_image_url(url: str | None) -> str | None:
    """A row's media URL as a signed one Label Studio can fetch without a session (winnow.media)."""
    if url is None:
        return None
    base, _, path = url.partition(f"/{settings.MEDIA_URL.strip('/')}/")
    return media.signed_url(base, path)


def label_studio_task(row: dict[str, Any]) -> dict[str, Any]:
    """One export row as a Label Studio task (its JSON import and export format).

    Annotations carry no `completed_by`: Label Studio reads it as one of its own user ids, which a
    Winnow id is not; who answered is in `meta.winnow.annotators`, in the annotations' order.
    """
    data: dict[str, Any] = {key: value for key, value in row["metadata"].value().items() if isinstance(key, str)}
    data.update(image=_signed_image_url(row["image"]["url"]) or row["image"]["source_url"], unique_id=row["unique_id"],
                winnow_task_id=row["id"])
    annotations = [
        {"result": _ls_result(a["choice"]), "created_at": a["created_at"],
         "lead_time": a["duration_ms"] / 1000, "ground_truth": False, "was_cancelled": False}
        for a in row["annotations"]
    ]
    if row["is_gold"] and row["gold_answer"]:
        # The owner's confirmed answer is Label Studio's ground truth.
        annotations.append({"result": _ls_result(row["gold_answer"]), "ground_truth": True, "was_cancelled": False,
                            "created_at": row["completed_at"] or row["created_at"]})
    predictions = []
    if row["answer"]:
        predictions.append({"model_version": f"winnow-{row['decided_by'] or 'answer'}", "score": row["agreement"],
                            "result": _ls_result(row["answer"])})
    return {
        "id": row["id"],
        "data": data,
        "annotations": annotations,
        "predictions": predictions,
        "meta": {"winnow": {"status": row["status"], "batch": row["batch"], "answer": row["answer"],
                            "decided_by": row["decided_by"], "agreement": row["agreement"], "is_gold": row["is_gold"],
                            "sha256": row["image"]["sha256"],
                            "annotators": [a["annotator"] for a in row["annotations"]]}},
        "created_at": row["created_at"],
    }


def _label_studio(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    return _json((label_studio_task(row) for row in rows), encode=_encode)


def folder_name(label: str) -> str:
    """A choice label as one safe path component of a zip (no separators, no leading dots)."""
    name = "".join("_" if ch in '/\\:*?"<>|' or not ch.isprintable() else ch for ch in label).strip().lstrip(".")
    return name or "_"


def _imagefolder(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Answered images as `<choice>/<sha256>.<ext>`, the ImageFolder layout, plus labels.csv and the same
    rows as metadata.csv (`file_name` first), which Hugging Face's imagefolder loader reads.

    Only completed tasks with an image and an answer go in; an image answered the same way by two
    tasks is written once. Images are stored, not deflated: they are compressed already.
    """
    sink = ZipStream()
    seen: set[tuple[str, str]] = set()
    index, meta = _Lines(), _Lines()
    labels, metadata = csv.writer(index), csv.writer(meta)
    labels.writerow(["path", "label", "task_id", "unique_id", "sha256", "decided_by", "agreement"])
    # The same rows as Hugging Face's imagefolder loader reads them: `file_name`, then the label column.
    metadata.writerow(["file_name", "label", "task_id", "unique_id", "sha256", "decided_by", "agreement"])
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for chunk in _chunks((r for r in rows if r["status"] == "completed" and r["answer"] and r["image"]["sha256"]),
                             500):
            files = dict(Asset.objects.filter(sha256__in={r["image"]["sha256"] for r in chunk}).values_list("sha256", "file"))
            for row in chunk:
                sha256 = row["image"]["sha256"]
                folder = folder_name(row["answer"])
                if (folder, sha256) in seen or sha256 not in files:
                    continue
                seen.add((folder, sha256))
                extension = files[sha256].rsplit(".", 1)[-1] if "." in files[sha256] else "bin"
                path = f"{folder}/{sha256}.{extension}"
                cells = [_csv_cell(v) for v in (path, row["answer"], row["id"], row["unique_id"], sha256,
                                                row["decided_by"], row["agreement"])]
                labels.writerow(cells)
                metadata.writerow(cells)
                yield from copy_into(archive, sink, files[sha256], path)
        archive.writestr("labels.csv", index.take())
        archive.writestr("metadata.csv", meta.take())
    yield sink.take()


def _chunks(items: Iterator[dict[str, Any]] | Any, size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


WRITERS.update({
    "csv": Writer(_csv, "text/csv; charset=utf-8", "csv"),
    "labelstudio": Writer(_label_studio, "application/json", "labelstudio.json"),
    "imagefolder": Writer(_imagefolder, "application/zip", "zip"),
})


# --- an approved split in the CycleGAN reference layout -----------------------------------------

CYCLEGAN_FOLDERS = {("A", "train"): "trainA", ("B", "train"): "trainB", ("A", "test"): "testA",
                    ("B", "test"): "testB", ("A", "val"): "valA", ("B", "val"): "valB"}


def stream_cyclegan_zip(split: Split, on_item: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """An approved split as the zip the CycleGAN reference code reads: trainA/, trainB/, testA/, testB/
    (and valA/, valB/ for the validation partition, which the reference reads with `--phase val`), named
    by content hash, plus the split's manifest.json. Refused (409) for a split not yet approved.
    """
    from . import splits

    if split.status != SplitStatus.APPROVED:
        raise IllegalTransition(f"split v{split.version} is a draft; approve it before exporting it for training")
    sink = ZipStream()
    manifest = splits.read_manifest(split)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        archive.writestr("manifest.json", manifest)
        yield sink.take()
        rows = split.items.order_by("domain", "partition", "asset__sha256").values_list(
            "domain", "partition", "asset__sha256", "asset__file"
        )
        for n, (domain, partition, sha256, name) in enumerate(rows.iterator(chunk_size=CHUNK), 1):
            extension = name.rsplit(".", 1)[-1] if "." in name else "bin"
            yield from copy_into(archive, sink, name, f"{CYCLEGAN_FOLDERS[(domain, partition)]}/{sha256}.{extension}")
            if on_item is not None:
                on_item(n)
    yield sink.take()


# --- exports as background jobs -----------------------------------------------------------------

EXPORT_FORMATS = (*WRITERS, "cyclegan")
PROGRESS_EVERY = 1000  # rows between progress writes
PROGRESS_SECONDS = 5  # and at least this often when rows are slow (images in a zip)


def start_export(*, project: Project, fmt: str, requested_by: AbstractBaseUser, batch: Batch | None = None,
                 split: Split | None = None) -> Export:
    """Queue an export to a file; a worker writes it and records its progress (poll the export's status).

    `cyclegan` exports an approved split (give `split`); every other format exports tasks, all or one batch's.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use one of {sorted(EXPORT_FORMATS)}")
    if fmt == "cyclegan":
        if split is None:
            raise InvalidInput("the cyclegan format exports a split: give the id of an approved split as `split`")
        if split.status != SplitStatus.APPROVED:
            raise IllegalTransition(f"split v{split.version} is a draft; approve it before exporting it for training")
    elif split is not None:
        raise InvalidInput(f"the {fmt} format exports tasks; `split` goes with the cyclegan format only")
    for thing in (batch, split):
        if thing is not None and thing.project_id != project.pk:
            raise InvalidInput(f"{thing._meta.verbose_name} {thing.pk} is not part of this project")
    with transaction.atomic():
        export = Export.objects.create(project=project, format=fmt, batch=batch, split=split, requested_by=requested_by)
        transaction.on_commit(lambda: _enqueue_export(export.pk))
    return export


def _enqueue_export(export_id: int) -> None:
    from . import jobs

    jobs.run_export.delay(export_id)


def extension_of(fmt: str) -> str:
    return "zip" if fmt == "cyclegan" else WRITERS[fmt].extension


def content_type_of(fmt: str) -> str:
    return "application/zip" if fmt == "cyclegan" else WRITERS[fmt].content_type


def export_path(export: Export) -> Path:
    return Path(settings.MEDIA_ROOT) / export.file


def run_export(*, export_id: int) -> None:
    """Write a queued export to MEDIA_ROOT/exports/, counting rows as it goes (queued → running → done).

    A background job (winnow/jobs.py): claimed by a conditional update, so a redelivered job does
    nothing while the export's worker is alive; the worker beats while it writes. If it was killed
    (its beat older than EXPORT_STALE_SECONDS), the sweep or a redelivered job takes the export over
    and starts the file again, removing what the dead worker left. The file is written under a
    temporary name and renamed when complete; a failure marks the export failed with the reason.
    """
    if not Export.objects.claim(export_id, rows_done=0):
        return
    export = Export.objects.select_related("project", "split").get(pk=export_id)
    background.run_claimed(background.JobBeat(Export, export_id), lambda: _write_export(export))


def _write_export(export: Export) -> None:
    export_id = export.pk
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(export.project_id)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f".tmp-{export_id}-*"):  # a killed worker's partial file
        log.warning("export %s: its worker stopped while writing it; writing it again", export_id)
        leftover.unlink(missing_ok=True)
    last_progress = time.monotonic()

    def progress(n: int) -> None:
        nonlocal last_progress
        if n % PROGRESS_EVERY == 0 or time.monotonic() - last_progress > PROGRESS_SECONDS:
            last_progress = time.monotonic()
            Export.objects.filter(pk=export_id).update(rows_done=n)

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{export_id}-")
    out = os.fdopen(fd, "wb")
    try:
        if export.format == "cyclegan":
            if export.split is None:  # start_export requires one; it was deleted while the export waited
                raise InvalidInput("the split of this export was deleted; export another split")
            total = export.split.items.count()
            chunks = stream_cyclegan_zip(export.split, on_item=progress)
        else:
            writer = WRITERS[export.format]
            tasks = Task.objects.alive().filter(project_id=export.project_id)
            if export.batch_id:
                tasks = tasks.filter(batch_id=export.batch_id)
            total = tasks.count()
            rows = task_rows(project=export.project, base_url=settings.WINNOW_PUBLIC_URL, batch_id=export.batch_id)
            chunks = writer.stream(_counted(rows, progress))
        Export.objects.filter(pk=export_id).update(rows_total=total)
        with out:
            for chunk in chunks:
                out.write(chunk)
        name = f"exports/{export.project_id}/export-{export.pk}-{secrets.token_urlsafe(12)}.{extension_of(export.format)}"
        os.replace(tmp, Path(settings.MEDIA_ROOT) / name)
        Export.objects.filter(pk=export_id).update(
            status=ExportStatus.DONE, file=name, rows_done=total, byte_size=(Path(settings.MEDIA_ROOT) / name).stat().st_size,
            finished_at=timezone.now(),
        )
    except BaseException:
        out.close()
        Path(tmp).unlink(missing_ok=True)
        raise


def requeue_stalled_exports() -> list[int]:
    """Queue again the running exports whose worker stopped beating (killed, or its message lost);
    the job takes each over (see run_export). Every worker's sweep runs this (winnow/jobs.py)."""
    return background.recover_stale(Export, _enqueue_export)


def prune_exports(*, now: datetime | None = None) -> int:
    """Delete the files of exports finished more than EXPORT_RETENTION_HOURS ago (0 keeps them all).

    Each is marked `expired` by a conditional update before its file goes, so two prunes never race
    over one file and a download sees either the file or the expired status. Temporary files older
    than the retention (an export whose worker was killed while writing) go too. Returns how many
    exports expired. The export job runs this after each export it writes; `manage.py prune_exports`
    runs it from cron.
    """
    hours = settings.EXPORT_RETENTION_HOURS
    if not hours:
        return 0
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    expired = 0
    for export in Export.objects.filter(status=ExportStatus.DONE, finished_at__lt=cutoff).only("id", "file"):
        if Export.objects.filter(pk=export.pk, status=ExportStatus.DONE).update(status=ExportStatus.EXPIRED):
            export_path(export).unlink(missing_ok=True)
            expired += 1
    for tmp in (Path(settings.MEDIA_ROOT) / "exports").glob("*/.tmp-*"):
        try:
            if tmp.stat().st_mtime < cutoff.timestamp():
                tmp.unlink()
        except FileNotFoundError:  # another prune took it
            pass
    return expired


def _counted(rows: Iterator[dict[str, Any]], progress: Callable[[int], None]) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, 1):
        progress(n)
        yield row
