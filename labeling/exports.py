"""Exports as background jobs: start one, write it with progress in a worker (an `Export` is a
`BackgroundJob`, taken over when its worker dies), serve and expire its file. The formats
themselves live in `formats.py`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from winnow import jobs as background
from winnow import storage
from winnow.exceptions import IllegalTransition, InvalidInput

from .formats import WRITERS, stream_cyclegan_zip, task_rows
from .models import Batch, Export, ExportStatus, Project, Split, SplitStatus, Task

log = logging.getLogger(__name__)



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


def run_export(*, export_id: int) -> None:
    """Write a queued export to exports/ in the media storage, counting rows as it goes (queued → running → done).

    A background job (winnow/jobs.py): claimed by a conditional update, so a redelivered job does
    nothing while the export's worker is alive; the worker beats while it writes. If it was killed
    (its beat older than EXPORT_STALE_SECONDS), the sweep or a redelivered job takes the export over
    and starts the file again, removing what the dead worker left. The file is stored whole or not at
    all (winnow/storage.py: a temporary file renamed in a folder, one upload to a bucket); a failure
    marks the export failed with the reason.
    """
    if not Export.objects.claim(export_id, rows_done=0):
        return
    export = Export.objects.select_related("project", "split").get(pk=export_id)
    background.run_claimed(background.JobBeat(Export, export_id), lambda: _write_export(export))


def _write_export(export: Export) -> None:
    export_id = export.pk
    if storage.remove_leftovers(f"exports/{export.project_id}", f".tmp-{export_id}-*"):  # a killed worker's partial file
        log.warning("export %s: its worker stopped while writing it; writing it again", export_id)
    last_progress = time.monotonic()

    def progress(n: int) -> None:
        nonlocal last_progress
        if n % PROGRESS_EVERY == 0 or time.monotonic() - last_progress > PROGRESS_SECONDS:
            last_progress = time.monotonic()
            Export.objects.filter(pk=export_id).update(rows_done=n)

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

    def write(out: IO[bytes]) -> None:
        for chunk in chunks:
            out.write(chunk)

    name = f"exports/{export.project_id}/export-{export.pk}-{secrets.token_urlsafe(12)}.{extension_of(export.format)}"
    size = storage.put(name, write, prefix=f".tmp-{export_id}-")
    Export.objects.filter(pk=export_id).update(
        status=ExportStatus.DONE, file=name, rows_done=total, byte_size=size, finished_at=timezone.now(),
    )


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
            if export.file:
                storage.delete(export.file)
            expired += 1
    root = storage.local_root()  # object storage keeps no temporary files: an upload is whole or absent
    for tmp in (root / "exports").glob("*/.tmp-*") if root is not None else ():
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
