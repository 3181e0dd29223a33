"""Using a trained run: translate an uploaded image, generate a synthetic minority-domain data set.

The run is trained in this process (the same service the worker calls); the augmentation job goes
through the real worker.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from labeling.models import Split
from tests.conftest import wait_for
from training import runs, use
from training.models import Augmentation, AugmentationStatus, Checkpoint, Run, RunStatus

from .conftest import TINY_CONFIG


def upload(size: tuple[int, int], fmt: str = "JPEG") -> io.BytesIO:
    array = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt)
    out.seek(0)
    out.name = f"photo.{fmt.lower()}"
    return out


def translate(client: Any, run: Run, file: Any, **fields: Any) -> Any:
    return client.post(f"/api/v1/runs/{run.pk}/translate/", {"image": file, **fields}, format="multipart")


@pytest.mark.parametrize("direction", ["AB", "BA"])
def test_translate_returns_an_image_of_the_input_size(trained_run: Run, alice: Any, client_for: Callable,
                                                      direction: str) -> None:
    response = translate(client_for(alice), trained_run, upload((45, 33)), direction=direction)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert (image.size, image.mode) == ((45, 33), "RGB")
    assert response["X-Winnow-Checkpoint-Step"] == "10" and response["X-Winnow-Resized"] == "0"


def test_translate_with_an_older_checkpoint(trained_run: Run, alice: Any, client_for: Callable) -> None:
    older = Checkpoint.objects.filter(run=trained_run, deleted_at__isnull=True).order_by("step").first()
    response = translate(client_for(alice), trained_run, upload((32, 32), "PNG"), direction="AB", checkpoint=older.pk)
    assert response.status_code == 200 and response["X-Winnow-Checkpoint-Step"] == str(older.step)


def test_a_large_image_is_scaled_down_to_the_limit(trained_run: Run, alice: Any, client_for: Callable,
                                                  settings: Any) -> None:
    settings.WINNOW_TRANSLATE_MAX_SIDE = 40
    response = translate(client_for(alice), trained_run, upload((80, 60)), direction="AB")
    assert response.status_code == 200 and response["X-Winnow-Resized"] == "1"
    assert Image.open(io.BytesIO(response.content)).size == (40, 30)


@pytest.mark.parametrize(
    ("make_file", "fields", "message"),
    [
        (lambda: io.BytesIO(b"not an image at all"), {"direction": "AB"}, "image"),
        (lambda: upload((32, 32)), {"direction": "sideways"}, "direction"),
        (lambda: upload((32, 32)), {}, "direction"),
        (lambda: upload((8, 40)), {"direction": "AB"}, "at least 16 px"),
        (lambda: upload((32, 32)), {"direction": "AB", "checkpoint": 999999}, "does not belong"),
    ],
)
def test_translate_refuses_bad_input_clearly(trained_run: Run, alice: Any, client_for: Callable,
                                             make_file: Callable, fields: dict, message: str) -> None:
    file = make_file()
    file.name = getattr(file, "name", "upload.bin")
    response = translate(client_for(alice), trained_run, file, **fields)
    assert response.status_code == 400
    assert message in json.dumps(response.json())


def test_a_rotated_out_checkpoint_is_refused(trained_run: Run, alice: Any, client_for: Callable) -> None:
    gone = Checkpoint.objects.filter(run=trained_run, deleted_at__isnull=False).first()
    response = translate(client_for(alice), trained_run, upload((32, 32)), direction="AB", checkpoint=gone.pk)
    assert response.status_code == 409 and "rotated out" in response.json()["detail"]


def test_only_owners_translate(trained_run: Run, bob: Any, mallory: Any, client_for: Callable) -> None:
    assert translate(client_for(bob), trained_run, upload((32, 32)), direction="AB").status_code == 403
    assert translate(client_for(mallory), trained_run, upload((32, 32)), direction="AB").status_code == 404


@pytest.mark.worker
def test_augmentation_makes_synthetic_minority_images_with_a_manifest(
    celery_worker: Any, trained_run: Run, alice: Any, client_for: Callable
) -> None:
    client = client_for(alice)
    # 4 A and 5 B: A is the minority, so B images are made into A.
    response = client.post(f"/api/v1/runs/{trained_run.pk}/augmentations/", {"count": 3}, format="json")
    assert response.status_code == 202, response.json()
    assert (response.json()["direction"], response.json()["count"]) == ("BA", 3)
    augmentation = wait_for(
        lambda: Augmentation.objects.filter(pk=response.json()["id"]).exclude(
            status__in=[AugmentationStatus.QUEUED, AugmentationStatus.RUNNING]).first(),
        timeout=120, what="the augmentation job",
    )
    assert augmentation.status == AugmentationStatus.SUCCEEDED, augmentation.error
    assert augmentation.produced == 3

    download = client.get(client.get(f"/api/v1/augmentations/{augmentation.pk}/").json()["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["synthetic"] is True and manifest["run"]["id"] == trained_run.pk
    checkpoint = augmentation.checkpoint
    with default_storage.open(checkpoint.file.name, "rb") as handle:
        assert manifest["checkpoint"] == {"id": checkpoint.pk, "step": checkpoint.step,
                                          "sha256": hashlib.sha256(handle.read()).hexdigest()}
    sources = set(trained_run.split.items.filter(domain="B").values_list("asset__sha256", flat=True))
    assert len(manifest["items"]) == 3
    for item in manifest["items"]:
        assert item["synthetic"] is True and item["domain"] == "A" and item["file"].startswith("A/")
        assert item["source"]["sha256"] in sources and item["source"]["domain"] == "B"
        data = archive.read(item["file"])
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert min(Image.open(io.BytesIO(data)).size) == 32  # the run's image size


def test_augmentation_refuses_more_images_than_the_majority_has(trained_run: Run, alice: Any, bob: Any,
                                                                client_for: Callable) -> None:
    response = client_for(alice).post(f"/api/v1/runs/{trained_run.pk}/augmentations/", {"count": 6}, format="json")
    assert response.status_code == 400 and "between 1 and 5" in response.json()["detail"]
    response = client_for(bob).post(f"/api/v1/runs/{trained_run.pk}/augmentations/", {"count": 1}, format="json")
    assert response.status_code == 403
    assert not Augmentation.objects.exists()


def test_a_run_that_cannot_read_its_data_fails_with_the_reason(
    transactional_db: Any, approved_split: Split, alice: Any
) -> None:
    run = Run.objects.create(project=approved_split.project, split=approved_split, requested_by=alice,
                             config=runs.resolve_config(TINY_CONFIG))
    item = approved_split.items.select_related("asset").first()
    stored = default_storage.open(item.asset.file.name, "rb").read()
    default_storage.delete(item.asset.file.name)
    try:
        with pytest.raises(FileNotFoundError):
            runs.execute_run(run_id=run.pk)
    finally:
        default_storage.save(item.asset.file.name, io.BytesIO(stored))
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "FileNotFoundError" in run.error and run.finished_at is not None
    runs.execute_run(run_id=run.pk)  # not queued any more: a redelivered message does nothing
    assert Run.objects.get(pk=run.pk).attempts == 1


def test_an_augmentation_whose_worker_died_goes_back_to_the_queue(trained_run: Run, alice: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    # A live worker of another test would take these jobs: this test plays the worker.
    settings.WINNOW_TRAINING_QUEUE = "gpu-unconsumed-test"
    dead = use.start_augmentation(run=trained_run, count=2, requested_by=alice)
    beating = use.start_augmentation(run=trained_run, count=2, requested_by=alice)
    Augmentation.objects.filter(pk=dead.pk).update(status=AugmentationStatus.RUNNING,
                                                   heartbeat_at=timezone.now() - timedelta(hours=1))
    Augmentation.objects.filter(pk=beating.pk).update(status=AugmentationStatus.RUNNING, heartbeat_at=timezone.now())
    assert use.recover_stale_augmentations() == [dead.pk]
    assert Augmentation.objects.get(pk=dead.pk).status == AugmentationStatus.QUEUED
    assert Augmentation.objects.get(pk=beating.pk).status == AugmentationStatus.RUNNING
    assert use.recover_stale_augmentations() == []  # claimed once
    # The next attempt removes the half-written zip the dead one left, then writes the whole file.
    folder = runs.local_path(f"{trained_run.storage_prefix}/augmentations")
    folder.mkdir(parents=True, exist_ok=True)
    leftover = folder / f".{dead.pk}-halfwritten.tmp"
    leftover.write_bytes(b"PK")
    use.execute_augmentation(augmentation_id=dead.pk)
    dead.refresh_from_db()
    assert dead.status == AugmentationStatus.SUCCEEDED, dead.error
    assert not leftover.exists() and not list(folder.glob("*.tmp"))
