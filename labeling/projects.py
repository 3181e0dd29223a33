"""Projects, their taxonomy and members, and the batch lifecycle up to labeling: create, finalize, approve calibration.

Each function takes keyword-only arguments, runs in one transaction and returns model instances;
they raise the domain exceptions of `exceptions.py`, which the API maps to 400/403/404/409.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from winnow.exceptions import Conflict, IllegalTransition, InvalidInput, NotFound

from . import webhooks
from .answers import advance_batch
from .exceptions import CalibrationRequired
from .models import (
    Annotation,
    Batch,
    BatchKind,
    BatchStatus,
    Choice,
    Lease,
    Membership,
    Project,
    Role,
    Task,
)

User = get_user_model()



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


def _require_calibration(project: Project, action: str) -> None:
    if not project.calibration_approved:
        raise CalibrationRequired(
            f"cannot {action} a production batch before the project's calibration is approved: label a "
            "calibration batch, review it, then POST /api/v1/projects/{id}/approve-calibration/"
        )


def create_batch(*, project: Project, name: str, kind: str, created_by: AbstractBaseUser, callback_url: str = "",
                 metadata: dict[str, Any] | None = None, self_label: bool = False) -> Batch:
    """Create an open batch. Production batches need an approved calibration first (409); a callback_url
    must be one a callback may reach, by the rules of URL ingestion (400)."""
    if callback_url:
        callback_url = webhooks.check_receiver_url(callback_url, field="callback_url")
    if kind == BatchKind.PRODUCTION:
        _require_calibration(project, "create")
    try:
        with transaction.atomic():
            return Batch.objects.create(
                project=project, name=name, kind=kind, created_by=created_by, callback_url=callback_url,
                metadata=metadata or {}, self_label=self_label,
            )
    except IntegrityError as exc:
        raise Conflict(f"this project already has a batch named {name!r}; choose another name", code="duplicate") from exc


def set_batch_metadata(*, batch: Batch, metadata: dict[str, Any]) -> Batch:
    """Replace a batch's metadata (the owner's own JSON; Winnow reads nothing from it)."""
    Batch.objects.filter(pk=batch.pk).update(metadata=metadata)
    batch.metadata = metadata
    return batch


def finalize_batch(*, batch: Batch) -> Batch:
    """Close a batch to uploads and hand its tasks to annotators (open → finalized)."""
    if batch.kind == BatchKind.PRODUCTION:
        _require_calibration(batch.project, "finalize")
    if not batch.tasks.alive().exists():
        raise Conflict("the batch has no tasks yet; upload images before finalizing", code="empty_batch")
    from . import quality

    with transaction.atomic():
        won = Batch.objects.filter(pk=batch.pk).transition(BatchStatus.FINALIZED, finalized_at=timezone.now())
        batch.refresh_from_db()
        if not won:
            raise IllegalTransition(f"batch is {batch.status}, not open; only an open batch can be finalized")
        quality.mix_gold(batch=batch)  # production batches get their share of gold tasks
    advance_batch(batch.pk)
    return batch


def require_open(batch: Batch) -> None:
    if batch.status != BatchStatus.OPEN:
        raise IllegalTransition(f"batch is {batch.status}; images can only be added to an open batch")


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
