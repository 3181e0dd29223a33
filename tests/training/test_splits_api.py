"""Domain splits: POST /projects/{id}/splits/, GET /splits/{id}/, approve, manifest and zip export."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from labeling.models import Asset, BatchStatus, Partition, Project, Split, SplitItem, SplitStatus, Task
from labeling.splits import partition_of

pytestmark = pytest.mark.django_db


def build(client: Any, project: Project, **body: Any) -> Any:
    return client.post(f"/api/v1/projects/{project.pk}/splits/", body, format="json")


def test_it_builds_a_split_from_accepted_batches_only(
    project: Project, accepted_batch: Callable[..., Any], alice: Any, client_for: Callable
) -> None:
    accepted_batch(project, "AAB-")
    accepted_batch(project, "AB", status=BatchStatus.LABELED)  # not accepted: left out
    response = build(client_for(alice), project)
    assert response.status_code == 201, response.json()
    split = Split.objects.get(pk=response.json()["id"])
    assert (split.version, split.status) == (1, SplitStatus.DRAFT)
    assert split.counts["A"]["total"] == 2 and split.counts["B"]["total"] == 1
    assert split.counts["excluded"] == 1 and split.counts["total"] == 3
    assert SplitItem.objects.filter(split=split).count() == 3
    assert build(client_for(alice), project).json()["version"] == 2  # versions count up


def test_an_agreement_threshold_leaves_out_uncertain_answers(
    project: Project, accepted_batch: Callable[..., Any], alice: Any, client_for: Callable
) -> None:
    accepted_batch(project, "AABB", agreements=[1.0, 0.5, 0.9, None])
    response = build(client_for(alice), project, min_agreement=0.8)
    assert response.status_code == 201
    counts = response.json()["counts"]
    assert (counts["A"]["total"], counts["B"]["total"], counts["below_agreement"]) == (1, 2, 1)
    assert response.json()["options"]["min_agreement"] == 0.8


def test_an_image_labeled_into_both_domains_is_left_out_as_a_conflict(
    project: Project, accepted_batch: Callable[..., Any], alice: Any, client_for: Callable
) -> None:
    first = accepted_batch(project, "AB")
    second = accepted_batch(project, "B")
    # The second batch's task shows the first batch's A image again (the same asset), answered B.
    a_task = Task.objects.filter(batch=first).order_by("id").first()
    Task.objects.filter(batch=second).update(asset=a_task.asset)
    counts = build(client_for(alice), project).json()["counts"]
    assert (counts["A"]["total"], counts["B"]["total"], counts["conflicts"]) == (0, 1, 1)


def test_partitions_follow_the_image_hash_and_stay_put_across_versions(
    project: Project, accepted_batch: Callable[..., Any], alice: Any, client_for: Callable
) -> None:
    accepted_batch(project, "AAAAABBBBB" * 2)
    client = client_for(alice)
    first = Split.objects.get(pk=build(client, project, val_fraction=0.2, test_fraction=0.3).json()["id"])
    accepted_batch(project, "AB")
    second = Split.objects.get(pk=build(client, project, val_fraction=0.2, test_fraction=0.3).json()["id"])
    rows = {sha: part for sha, part in second.items.values_list("asset__sha256", "partition")}
    for sha, part in first.items.values_list("asset__sha256", "partition"):
        assert part == partition_of(sha, 0.2, 0.3) == rows[sha]
    assert set(rows.values()) <= set(Partition.values)


def test_the_manifest_is_served_exactly_as_hashed(approved_split: Split, alice: Any, bob: Any, client_for: Callable) -> None:
    response = client_for(bob).get(f"/api/v1/splits/{approved_split.pk}/manifest/")  # members may read
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == approved_split.manifest_sha256
    manifest = json.loads(response.content)
    assert manifest["version"] == approved_split.version and len(manifest["items"]) == 9
    item = manifest["items"][0]
    asset = Asset.objects.get(sha256=item["sha256"])
    assert {"domain", "partition", "task", "batch", "choice", "agreement"} <= set(item)
    assert item["byte_size"] == asset.byte_size


def test_approval_freezes_the_split(
    project: Project, accepted_batch: Callable[..., Any], alice: Any, client_for: Callable
) -> None:
    batch = accepted_batch(project, "AABB")
    client = client_for(alice)
    split_id = build(client, project).json()["id"]
    response = client.post(f"/api/v1/splits/{split_id}/approve/")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    split = Split.objects.get(pk=split_id)
    assert split.approved_by == alice and split.approved_at is not None

    again = client.post(f"/api/v1/splits/{split_id}/approve/")
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    # Relabeling afterwards changes the tasks, never the approved split.
    Task.objects.filter(batch=batch).update(final_choice=project.choices.get(domain="excluded"))
    manifest = client.get(f"/api/v1/splits/{split_id}/manifest/")
    assert hashlib.sha256(manifest.content).hexdigest() == split.manifest_sha256
    assert client.get(f"/api/v1/splits/{split_id}/").json()["counts"] == split.counts
    assert SplitItem.objects.filter(split=split).count() == 4


def test_the_zip_export_is_imagefolder_with_the_manifest(approved_split: Split, alice: Any, client_for: Callable) -> None:
    response = client_for(alice).get(f"/api/v1/splits/{approved_split.pk}/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[0] == "manifest.json"
    assert sum(n.startswith("A/") for n in names) == 4 and sum(n.startswith("B/") for n in names) == 5
    for name in names[1:]:
        sha = name.split("/")[1].split(".")[0]
        assert hashlib.sha256(archive.read(name)).hexdigest() == sha  # the file is the hashed image
    assert hashlib.sha256(archive.read("manifest.json")).hexdigest() == approved_split.manifest_sha256


def test_it_refuses_a_split_with_nothing_to_put_in_it(project: Project, accepted_batch: Callable, alice: Any,
                                                     client_for: Callable) -> None:
    accepted_batch(project, "--")
    response = build(client_for(alice), project)
    assert response.status_code == 400
    assert "no image of domain A or B" in response.json()["detail"] and "2 excluded" in response.json()["detail"]
    assert not Split.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [({"min_agreement": 1.5}, "min_agreement"), ({"val_fraction": -0.1}, "val_fraction"),
     ({"val_fraction": 0.5, "test_fraction": 0.45}, "non_field_errors")],
)
def test_it_refuses_nonsense_options(project: Project, accepted_batch: Callable, alice: Any, client_for: Callable,
                                     body: dict, field: str) -> None:
    accepted_batch(project, "AB")
    response = build(client_for(alice), project, **body)
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not Split.objects.exists()


def test_annotators_and_strangers_cannot_build_approve_or_export(
    approved_split: Split, project: Project, bob: Any, mallory: Any, client_for: Callable
) -> None:
    assert build(client_for(bob), project).status_code == 403
    assert build(client_for(mallory), project).status_code == 404
    assert client_for(mallory).get(f"/api/v1/splits/{approved_split.pk}/").status_code == 404
    assert client_for(mallory).get(f"/api/v1/projects/{project.pk}/splits/").status_code == 404
    assert client_for(bob).get(f"/api/v1/splits/{approved_split.pk}/export/").status_code == 403
    assert client_for(bob).post(f"/api/v1/splits/{approved_split.pk}/approve/").status_code == 403
    assert Split.objects.count() == 1


def test_members_list_the_projects_splits(approved_split: Split, project: Project, bob: Any, client_for: Callable) -> None:
    response = client_for(bob).get(f"/api/v1/projects/{project.pk}/splits/")
    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [approved_split.pk]
