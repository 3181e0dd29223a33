"""Export formats: every task of a project as rows (image, answers, consensus, gold, audit), and the
encoders that stream them as JSON, NDJSON, CSV, Label Studio JSON, an ImageFolder zip, and an approved
split in the CycleGAN reference layout.

Rows are read in keyset-paginated chunks of plain values (no model instances), with one query for
the chunk's annotations, so memory stays flat however many tasks a project has.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import TextField
from django.db.models.functions import Cast

from winnow import media
from winnow.exceptions import IllegalTransition
from winnow.files import ZipStream, copy_into

from .models import Annotation, Asset, Audit, LabelQuality, Project, Split, SplitStatus, Suggestion, Task

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
        for task_id, annotator_id, choice_id, duration_ms, created_at, assisted in (
            Annotation.objects.live()
            .filter(**in_chunk)
            .order_by("task_id", "id")
            .values_list("task_id", "annotator_id", "choice_id", "duration_ms", "created_at", "assisted")
        ):
            answers[task_id].append(
                {
                    "annotator_id": annotator_id,
                    "annotator": users.get(annotator_id),
                    "choice": choices.get(choice_id),
                    "duration_ms": duration_ms,
                    "created_at": created_at.isoformat(),
                    "assisted": assisted,
                }
            )
        suggested = {
            task_id: {"choice": choices.get(choice_id), "confidence": round(confidence, 4), "source": "model"}
            for task_id, choice_id, confidence in Suggestion.objects.filter(**in_chunk)
            .values_list("task_id", "choice_id", "confidence")
        }
        # The likely-error check's score of the answer (docs/LABEL_ERRORS.md); stale once the answer changed.
        scored = {
            task_id: {"score": round(score, 4), "likely_error": flagged, "answer": answer_id}
            for task_id, score, flagged, answer_id in LabelQuality.objects.filter(**in_chunk)
            .values_list("task_id", "score", "likely_error", "answer_id")
        }
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
                # A suggestion, not an answer: the suggestion model's choice for a task still queued.
                "machine_suggestion": suggested.get(task_id),
                "label_quality": _label_quality(scored.get(task_id), final_choice_id),
                "created_at": created_at.isoformat(),
                "completed_at": completed_at.isoformat() if completed_at else None,
            }


def _label_quality(scored: dict[str, Any] | None, final_choice_id: int | None) -> dict[str, Any] | None:
    if scored is None:
        return None
    return {"score": scored["score"], "likely_error": scored["likely_error"],
            "stale": scored["answer"] != final_choice_id}


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


CSV_COLUMNS = [
    "id", "unique_id", "batch_id", "batch", "status", "answer", "decided_by", "agreement", "is_gold", "gold_answer",
    "annotation_count", "annotators", "audit_verdict", "audit_corrected", "image_url", "sha256", "width", "height", "format", "source_url", "source_name",
    "error", "metadata", "created_at", "completed_at",
    # The machine's suggestion (docs/ASSIST.md): what the model proposed for a queued task, never an answer.
    "machine_suggestion", "machine_suggestion_confidence", "assisted_answers",
    # The likely-error check's score of the answer (docs/LABEL_ERRORS.md): low means likely wrong.
    "label_quality", "likely_error",
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
        (row["machine_suggestion"] or {}).get("choice"), (row["machine_suggestion"] or {}).get("confidence"),
        sum(1 for a in answers if a["assisted"]),
        (row["label_quality"] or {}).get("score"), (row["label_quality"] or {}).get("likely_error"),
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
    if row["machine_suggestion"] and row["machine_suggestion"]["choice"]:
        # The suggestion model's guess, as Label Studio marks model pre-annotations: a prediction.
        predictions.append({"model_version": "winnow-suggestion", "score": row["machine_suggestion"]["confidence"],
                            "result": _ls_result(row["machine_suggestion"]["choice"])})
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


WRITERS.update({
    "csv": Writer(_csv, "text/csv; charset=utf-8", "csv"),
    "labelstudio": Writer(_label_studio, "application/json", "labelstudio.json"),
    "imagefolder": Writer(_imagefolder, "application/zip", "zip"),
})


def _chunks(items: Iterator[dict[str, Any]] | Any, size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
