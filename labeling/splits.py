"""Domain splits: frozen, versioned manifests of A and B images built from accepted batches.

A split is what training reads. It is built once from the audited answers of accepted batches,
written as a manifest (counts, per-image sha256 and provenance) whose own sha256 is recorded, and
never changes afterwards; an owner's approval marks it fit for training. Every image gets a
train/val/test partition from its content hash alone, so an image keeps its partition in every
later version of the split and a test image never leaks into a later training set. Near-duplicates
(labeling/duplicates.py: the same picture resized or re-encoded) take the partition of their group's
first image, so a group is never split between training and test.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from winnow import storage
from winnow.exceptions import IllegalTransition, InvalidInput
from winnow.files import ZipStream, copy_into

from . import duplicates, webhooks
from .models import (
    Asset,
    BatchStatus,
    Domain,
    Partition,
    Project,
    Split,
    SplitItem,
    SplitStatus,
    Task,
    TaskStatus,
)

MANIFEST_FORMAT = "winnow-split/1"
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
ITEM_CHUNK = 5000


def partition_of(sha256: str, val_fraction: float, test_fraction: float) -> str:
    """test, val or train from the image's hash: a fixed point in [0, 1) per image, whatever the split."""
    point = int(sha256[:16], 16) / 16**16
    if point < test_fraction:
        return Partition.TEST
    if point < test_fraction + val_fraction:
        return Partition.VAL
    return Partition.TRAIN


def manifest_name(split: Split) -> str:
    return f"splits/{split.project_id}/v{split.version}-{split.manifest_sha256}.json"


def build_split(
    *,
    project: Project,
    created_by: AbstractBaseUser,
    min_agreement: float | None = None,
    min_label_quality: float | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> Split:
    """Build the project's next split version (a draft) from its accepted batches.

    Each completed task of an accepted batch maps through its final (audit-corrected) choice to
    domain A or B; tasks answered with an `excluded` choice, and tasks whose agreement is under
    `min_agreement`, are left out and counted, as are tasks whose label quality score (docs/LABEL_ERRORS.md)
    is under `min_label_quality` (unscored tasks, gold, and answers changed since they were scored stay). An image labeled into both domains by different
    tasks is left out as a conflict. Takes a row lock on the project so two builds never race for
    the same version number. Refused (400) when no accepted batch has any labeled image.
    """
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise InvalidInput("min_agreement must be between 0 and 1")
    if min_label_quality is not None and not 0 <= min_label_quality <= 1:
        raise InvalidInput("min_label_quality must be between 0 and 1")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise InvalidInput("val_fraction and test_fraction must be non-negative and leave room for training")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        rows = (
            Task.objects.alive()
            .filter(
                project=project,
                batch__status=BatchStatus.ACCEPTED,
                batch__deleted_at__isnull=True,
                status=TaskStatus.COMPLETED,
                asset__isnull=False,
                final_choice__isnull=False,
            )
            .order_by("id")
            .values_list(
                "id", "batch_id", "unique_id", "source_name", "agreement", "decided_by",
                "final_choice__label", "final_choice__domain", "label_quality__score", "label_quality__answer_id",
                "final_choice_id",
                "asset_id", "asset__sha256", "asset__width", "asset__height", "asset__format", "asset__byte_size",
            )
        )
        group_of = duplicates.groups(project.pk)
        group_sha = dict(Asset.objects.filter(pk__in=set(group_of.values())).values_list("id", "sha256"))
        by_asset: dict[int, dict[str, Any]] = {}
        conflicts: set[int] = set()
        excluded = below_agreement = below_label_quality = 0
        for (task_id, batch_id, unique_id, source_name, agreement, decided_by, label, domain, score, scored_answer,
             answer_id, asset_id, sha256, width, height, fmt, byte_size) in rows.iterator(chunk_size=ITEM_CHUNK):
            if domain == Domain.EXCLUDED:
                excluded += 1
                continue
            # No agreement figure (a single answer, or an owner's gold answer) has nothing to fall short of.
            if min_agreement is not None and agreement is not None and agreement < min_agreement:
                below_agreement += 1
                continue
            if min_label_quality is not None and score is not None and scored_answer == answer_id \
                    and score < min_label_quality:
                below_label_quality += 1
                continue
            seen = by_asset.get(asset_id)
            if seen is not None:
                if seen["domain"] != domain:
                    conflicts.add(asset_id)
                continue  # the same image in two tasks (a gold copy, a re-upload) counts once
            # A near-duplicate group shares one partition: its representative's, a fixed image of the group.
            anchor = group_sha.get(group_of.get(asset_id, -1), sha256)
            by_asset[asset_id] = {
                "sha256": sha256, "domain": domain,
                "partition": partition_of(anchor, val_fraction, test_fraction),
                "width": width, "height": height, "format": fmt, "byte_size": byte_size,
                "task": task_id, "batch": batch_id, "unique_id": unique_id, "source_name": source_name,
                "choice": label, "decided_by": decided_by, "agreement": agreement,
                **({"near_duplicate_group": anchor} if asset_id in group_of else {}),
            }
        for asset_id in conflicts:
            del by_asset[asset_id]
        if not by_asset:
            raise InvalidInput(
                "no image of domain A or B in an accepted batch "
                f"({excluded} excluded, {below_agreement} under the agreement threshold, {len(conflicts)} in "
                "conflict): accept an audited batch, or lower min_agreement, then build the split",
                code="empty_split",
            )

        counts: dict[str, Any] = {
            domain: {p: 0 for p in Partition.values} | {"total": 0} for domain in (Domain.A, Domain.B)
        }
        for item in by_asset.values():
            counts[item["domain"]][item["partition"]] += 1
            counts[item["domain"]]["total"] += 1
        counts.update(excluded=excluded, below_agreement=below_agreement, below_label_quality=below_label_quality,
                      conflicts=len(conflicts),
                      total=len(by_asset))
        version = (project.splits.aggregate(v=Max("version"))["v"] or 0) + 1
        options = {"min_agreement": min_agreement, "min_label_quality": min_label_quality,
                   "val_fraction": val_fraction, "test_fraction": test_fraction}
        items = sorted(by_asset.items(), key=lambda pair: (pair[1]["domain"], pair[1]["partition"], pair[1]["sha256"]))
        manifest = {
            "format": MANIFEST_FORMAT,
            "project": {"id": project.pk, "name": project.name},
            "version": version,
            "created_at": timezone.now().isoformat(),
            "options": options,
            "counts": counts,
            "items": [item for _, item in items],
        }
        # Canonical bytes: the recorded hash is the sha256 of exactly the file that is stored and served.
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        split = Split.objects.create(
            project=project, version=version, options=options, counts=counts,
            manifest_sha256=hashlib.sha256(data).hexdigest(), created_by=created_by,
        )
        storage.put_bytes(manifest_name(split), data)  # whole or not at all; a storage outage is a 503
        SplitItem.objects.bulk_create(
            (
                SplitItem(split=split, asset_id=asset_id, task_id=item["task"], domain=item["domain"],
                          partition=item["partition"])
                for asset_id, item in items
            ),
            batch_size=ITEM_CHUNK,
        )
    return split


def approve_split(*, split: Split, approved_by: AbstractBaseUser) -> Split:
    """Freeze a draft split for training. Claimed by a conditional update; refused (409) unless a draft."""
    claimed = Split.objects.filter(pk=split.pk, status=SplitStatus.DRAFT).update(
        status=SplitStatus.APPROVED, approved_by=approved_by, approved_at=timezone.now()
    )
    if not claimed:
        raise IllegalTransition(f"split v{split.version} is already approved; build a new version to change it")
    split.refresh_from_db()
    webhooks.split_approved(split)
    return split


def read_manifest(split: Split) -> bytes:
    """The stored manifest, checked against the recorded hash (a changed file is an error, not data)."""
    with storage.opened(manifest_name(split), f"the manifest of split v{split.version}") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != split.manifest_sha256:
        raise IllegalTransition(f"the stored manifest of split v{split.version} does not match its recorded sha256")
    return data


def training_files(split: Split, domain: str, partition: str = Partition.TRAIN) -> list[tuple[str, str]]:
    """(asset sha256, storage name) of a split's images in one domain and partition, in a stable order."""
    return list(
        split.items.filter(domain=domain, partition=partition)
        .order_by("asset__sha256")
        .values_list("asset__sha256", "asset__file")
    )


def stream_zip(split: Split) -> Iterator[bytes]:
    """The split as a zip in ImageFolder layout, A/ and B/ (file name = sha256), plus manifest.json.

    Streamed: one image is in memory at a time, so a large split never sits in memory. Images are
    stored, not deflated (they are compressed already).
    """
    sink = ZipStream()
    manifest = read_manifest(split)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        archive.writestr("manifest.json", manifest)
        yield sink.take()
        rows = split.items.order_by("domain", "asset__sha256").values_list("domain", "asset__sha256", "asset__file")
        for domain, sha256, name in rows.iterator(chunk_size=ITEM_CHUNK):
            extension = name.rsplit(".", 1)[-1] if "." in name else "bin"
            yield from copy_into(archive, sink, name, f"{domain}/{sha256}.{extension}")
    yield sink.take()
