"""Streaming exports: every task of a project with its image, answers and status.

Rows are read in keyset-paginated chunks of plain values (no model instances), with one query for
the chunk's annotations, so memory stays flat however many tasks a project has.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from .models import Annotation, Audit, Project, Task

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
    fields = (
        "id", "unique_id", "batch_id", "status", "error", "metadata", "source_url", "source_name",
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
        last_id = chunk[-1][0]
        answers: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for task_id, annotator_id, choice_id, duration_ms, created_at in (
            Annotation.objects.live()
            .filter(task_id__in=[t[0] for t in chunk])
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
            Audit.objects.filter(task_id__in=[t[0] for t in chunk])
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
                "metadata": metadata,
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


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _ndjson(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer: list[str] = []
    for row in rows:
        buffer.append(_encode(row))
        if len(buffer) >= 500:
            yield ("\n".join(buffer) + "\n").encode()
            buffer.clear()
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def _json(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    first = True
    buffer: list[str] = []
    for row in rows:
        buffer.append(("" if first else ",") + _encode(row))
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
