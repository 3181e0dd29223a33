"""Near-duplicates: found at ingest by perceptual hash (in the upload reply and the data manager), by
embedding distance after the embedding job, and kept on one side of a split."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labeling import answers, demo, duplicates, leasing, projects, quality, splits
from labeling.models import Asset, BatchStatus, NearDuplicate, SplitItem

pytestmark = pytest.mark.django_db


def resized(data: bytes, size: int, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(out, fmt, quality=80)
    return out.getvalue()


def test_the_perceptual_hash_matches_a_resized_copy_and_not_another_image():
    original = Image.open(io.BytesIO(demo.planted_image("photo", 1, 96)))
    copy = Image.open(io.BytesIO(resized(demo.planted_image("photo", 1, 96), 64)))
    other = Image.open(io.BytesIO(demo.planted_image("photo", 2, 96)))
    h = np.array([duplicates.phash(original), duplicates.phash(copy), duplicates.phash(other)], dtype=np.int64)
    bits = duplicates.hamming(h[:1], h)
    assert bits[0] == 0 and bits[1] <= duplicates.PHASH_BITS < bits[2]
    assert -(2**63) <= int(h[0]) < 2**63  # fits a bigint


def test_the_upload_reply_names_the_task_an_image_nearly_duplicates(project, alice, client_for):
    batch = projects.create_batch(project=project, name="near", kind="calibration", created_by=alice)
    first = demo.planted_image("cartoon", 5, 96)
    upload = io.BytesIO(first)
    upload.name = "first.png"
    body = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", {"files": [upload]}, format="multipart").json()
    original = body["items"][0]["task_id"]
    assert "near_duplicate_of" not in body["items"][0]
    files = [io.BytesIO(resized(first, 80)), io.BytesIO(demo.planted_image("neither", 3, 96))]
    for f, name in zip(files, ("copy.jpg", "other.png"), strict=True):
        f.name = name
    body = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", {"files": files}, format="multipart").json()
    copy, other = body["items"]
    assert copy["status"] == "created" and copy["near_duplicate_of"] == original
    assert 0 <= copy["near_duplicate_bits"] <= duplicates.PHASH_BITS
    assert "near_duplicate_of" not in other
    assert NearDuplicate.objects.filter(project=project, kind="phash").count() == 1
    # The data manager finds both images of the pair, and the drawer names the other one.
    listed = client_for(alice).get(f"/api/v1/tasks/?project={project.pk}&near_duplicate=true").json()["results"]
    assert sorted(r["id"] for r in listed) == sorted([original, copy["task_id"]])
    detail = client_for(alice).get(f"/api/v1/tasks/{copy['task_id']}/").json()
    assert [n["task"] for n in detail["near_duplicates"]] == [original] and detail["near_duplicates"][0]["kind"] == "phash"
    assert client_for(alice).get(f"/api/v1/tasks/?project={project.pk}&near_duplicate=maybe").status_code == 400


def test_embedding_distance_pairs_need_a_close_hash_too(project, make_batch):
    batch = make_batch(project, 3)
    ids = list(batch.tasks.order_by("id").values_list("asset_id", flat=True))
    matrix = np.zeros((3, 128), np.float32)
    matrix[:, 0] = 1  # three identical embeddings
    first = Asset.objects.get(pk=ids[0]).phash
    Asset.objects.filter(pk=ids[1]).update(phash=first)  # 0 and 1 look alike
    Asset.objects.filter(pk=ids[2]).update(phash=~first)  # 2 does not: every bit differs
    NearDuplicate.objects.filter(project=project).delete()  # whatever the hashes paired at upload
    assert duplicates.find_by_embedding(project_id=project.pk, asset_ids=ids, matrix=matrix) == 1
    pair = NearDuplicate.objects.get(project=project)
    assert (pair.asset_low_id, pair.asset_high_id, pair.kind) == (ids[0], ids[1], "embedding")


def _accept(project: Any, batch: Any, annotator: Any, reviewer: Any, photo: int) -> None:
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=photo, duration_ms=10)
    batch.refresh_from_db()
    quality.draw_audit_sample(batch=batch, size=batch.tasks.count(), seed=3)
    for audit in batch.audits.all():
        quality.submit_audit(task=audit.task, reviewer=reviewer, correct=True, choice_id=None)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.ACCEPTED


def test_a_split_keeps_every_near_duplicate_group_on_one_side(project, alice, bob, carol):
    project.gold_rate = 0
    project.max_error_rate = 0.2  # 48 clean audits accept the batch
    project.calibration_approved_at = project.created_at
    project.save()
    batch = projects.create_batch(project=project, name="pairs", kind="production", created_by=alice)
    from labeling import ingest

    files = []
    for i in range(24):  # 24 pictures, each uploaded with a resized copy
        data = demo.planted_image("photo", 100 + i, 96)
        files += [(f"p{i}.png", io.BytesIO(data)), (f"p{i}-small.jpg", io.BytesIO(resized(data, 72)))]
    results = ingest.ingest_files(batch=batch, files=files)
    # Both images of a pair are new: each reply names the other's task.
    assert sum("near_duplicate_of" in r for r in results) == 48
    projects.finalize_batch(batch=batch)
    _accept(project, batch, bob, carol, project.choices.get(label="Photorealistic").pk)
    split = splits.build_split(project=project, created_by=alice, val_fraction=0.25, test_fraction=0.25)
    partition = dict(SplitItem.objects.filter(split=split).values_list("task__source_name", "partition"))
    assert len(partition) == 48
    assert all(partition[f"p{i}.png"] == partition[f"p{i}-small.jpg"] for i in range(24))
    assert len(set(partition.values())) > 1  # the groups themselves are spread over the partitions
    manifest = json.loads(splits.read_manifest(split))
    assert all("near_duplicate_group" in item for item in manifest["items"])
