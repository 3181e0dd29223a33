"""Handing tasks to annotators: leases (one database function call), skips, and who may label."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from winnow.exceptions import Conflict, InvalidInput, NotAllowed, NotFound

from . import hotpath
from .exceptions import LeaseExpired
from .hotpath import LEASE_CALL, LEASE_PROJECT, LEASE_RANKED, loaded
from .models import (
    LABELABLE_BATCH_STATUSES,
    Annotation,
    Asset,
    Lease,
    LeaseOrder,
    Membership,
    Project,
    Task,
)

# How many tasks one annotator may hold at once (grid mode's page is the largest user).
MAX_LEASED_TASKS = 100


# A skipped task is not handed back to the same annotator for this long.
SKIP_COOLDOWN = timedelta(minutes=10)


# The largest id a bigint column holds.
MAX_ID = 2**63 - 1


# A stranger is told nothing more than for a project that does not exist.
NOT_A_MEMBER = "no such project here: it does not exist or you are not a member of it"


def labeling_membership(project: Project, annotator: AbstractBaseUser) -> Membership:
    """The annotator's membership of `project`, refused as `check_labeling_membership` refuses."""
    membership = Membership.objects.filter(project=project, user=annotator).first()
    if membership is None:
        raise NotFound(NOT_A_MEMBER)
    check_labeling_membership(membership.pk, membership.paused_at, membership.paused_reason)
    return membership


def lease_next_task(*, project: Project | int, annotator: AbstractBaseUser) -> Task | None:
    """Lease the next task this annotator may answer, or return None when there is none.

    The single-task form of `lease_tasks`: an annotator's own unexpired lease is handed back first
    (a page reload resumes), otherwise a new task is leased.
    """
    tasks = lease_tasks(project=project, annotator=annotator, count=1)
    return tasks[0] if tasks else None


def lease_tasks(*, project: Project | int, annotator: AbstractBaseUser, count: int, choice_id: int | None = None,
                candidates: list[int] | None = None) -> list[Task]:
    """Make sure the annotator holds up to `count` leased tasks and return them, oldest batch first.

    The annotator's own unexpired, unanswered leases come first and are renewed (so asking again is
    harmless: a page reload or a retried request gets the same tasks back). The rest are new: queued
    tasks they have not answered, nor skipped within `SKIP_COOLDOWN`, whose live answers plus other
    people's unexpired leases are under the project's overlap; the oldest batch goes first, so batches
    finish, and reach their audit, one after another. Candidate rows are taken with
    `SELECT … FOR NO KEY UPDATE SKIP LOCKED` (migration 0019), so concurrent annotators never wait on each
    other, and a task is not skipped because a row pointing at it is being committed; the lease
    count is then re-read under the row lock, because the first query's subquery sees the snapshot
    taken when it started and may miss a lease committed just before the lock was granted.
    `project` may be a project's id (404 if there is no such live project). The tasks come with their
    assets loaded and `lease_expires_at` set.

    Inside a batch, tasks come in upload order, or (`winnow_lease_ranked`, migration 0017) least confident
    suggestion first when the project's lease order is "uncertainty"; only tasks suggested `choice_id`,
    most confident first (a suggested grid page); or only `candidates`, in their order (look-alikes).
    """
    if not 1 <= count <= MAX_LEASED_TASKS:
        raise InvalidInput(f"count must be between 1 and {MAX_LEASED_TASKS}")
    project_id = project if isinstance(project, int) else project.pk
    if not is_row_id(project_id):
        raise NotFound(f"project {project_id} does not exist")
    with connection.cursor() as cursor:
        hotpath.execute(cursor, "winnow_lease_project", LEASE_PROJECT, [annotator.pk, project_id])
        row = hotpath.fetch_one(cursor)
    if row is None:
        raise NotFound(f"project {project_id} does not exist")
    check_labeling_membership(row["member_id"], row["paused_at"], row["paused_reason"])
    overlap = row["overlap"]
    now = timezone.now()
    expires = now + timedelta(seconds=row["lease_seconds"])
    params = [project_id, annotator.pk, count, overlap, [str(s) for s in LABELABLE_BATCH_STATUSES],
              now, expires, now - SKIP_COOLDOWN]
    with connection.cursor() as cursor:
        if choice_id is None and candidates is None and row["lease_order"] != LeaseOrder.UNCERTAINTY:
            hotpath.execute(cursor, "winnow_lease_call", LEASE_CALL, params)
        else:
            hotpath.execute(cursor, "winnow_lease_ranked", LEASE_RANKED, [*params, choice_id, candidates])
        tasks = [_leased_task(row) for row in hotpath.fetch_all(cursor)]
    for task in tasks:
        task.lease_expires_at = expires  # type: ignore[attr-defined]
    return tasks


_LEASED_TASK_FIELDS = ("id", "project_id", "batch_id", "unique_id", "metadata", "created_at", "asset_id")
_LEASED_ASSET_FIELDS = ("sha256", "width", "height", "format", "byte_size", "file", "thumbnail")


def _leased_task(row: dict[str, Any]) -> Task:
    """A task and its asset from one row of `LEASE_CALL`."""
    task = loaded(Task, {name: row[name] for name in _LEASED_TASK_FIELDS})
    if row["asset_id"] is not None:
        task.asset = loaded(Asset, {"id": row["asset_id"], **{name: row[name] for name in _LEASED_ASSET_FIELDS}})
    else:
        task.asset = None
    return task


def is_row_id(value: int) -> bool:
    """Whether `value` can be a row id; plain SQL with a larger number would fail in the database (a 500)."""
    return 0 < value <= MAX_ID


def check_labeling_membership(member_id: int | None, paused_at: datetime | None, paused_reason: str) -> None:
    """Refuse a non-member (no membership row: 404, as for a project that does not exist, so nothing tells a
    stranger it is there) or a paused annotator (403), from a membership row's fields."""
    if member_id is None:
        raise NotFound(NOT_A_MEMBER)
    if paused_at is not None:
        raise NotAllowed(f"your labeling on this project is paused: {paused_reason or 'ask the owner'}", code="paused")


def skip_task(*, task: Task, annotator: AbstractBaseUser) -> Task:
    """Give a leased task back without answering it.

    The lease is released at once (others may take the task) and kept as a marker, so this
    annotator is not handed the same task again for `SKIP_COOLDOWN`. Skipping twice is harmless.
    Refused (409): no lease on the task, or the annotator already answered it (undo instead).
    """
    labeling_membership(task.project, annotator)
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


def active_lease_count() -> int:
    """Tasks leased to an annotator now (skipped leases are expired at once, so they do not count)."""
    return Lease.objects.filter(expires_at__gt=timezone.now()).count()
