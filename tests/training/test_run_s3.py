"""A training run whose GPU worker is another machine: it shares only the database, the broker and the
S3 bucket (a real S3 server on loopback, tests/conftest.py). It reads the split's images from the
bucket, writes checkpoints and samples back, and a fresh worker resumes the run from the bucket.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from PIL import Image

from labeling.models import Split
from tests.conftest import S3Media, files_under, wait_for
from training.cyclegan.infer import load_generator
from training.models import Checkpoint, MetricPoint, Run, RunStatus, Sample

from .test_run_worker import finished, start

pytestmark = pytest.mark.worker


def test_a_run_on_another_machine_trains_from_s3_writes_back_to_it_and_resumes_from_it(
    s3_media: S3Media, start_worker: Callable[..., Any], transactional_db: Any, settings: Any, tmp_path: Any,
    approved_split: Split, alice: Any, bob: Any, client_for: Callable,
) -> None:
    queue = "gpu-s3-test"
    settings.WINNOW_TRAINING_QUEUE = queue

    def gpu_machine(name: str) -> Any:
        """A worker with a media folder and a cache of its own: what it shares with the web is the bucket."""
        return start_worker(queues=queue, WINNOW_TRAINING_QUEUE=queue, **s3_media.env,
                            MEDIA_ROOT=str(tmp_path / name / "media"), WINNOW_MEDIA_CACHE=str(tmp_path / name / "cache"))

    split_images = set(approved_split.items.values_list("asset__file", flat=True))
    assert split_images <= set(s3_media.keys("assets/"))  # uploaded to the bucket, as the web does

    first = gpu_machine("gpu-1")
    client = client_for(alice)
    run_id = start(client, approved_split, epochs=300, decay_epochs=300, checkpoint_every=4, sample_every=4,
                   log_every=2)
    wait_for(lambda: Checkpoint.objects.filter(run_id=run_id).count() >= 2, timeout=180, what="two checkpoints")
    assert client.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    run = finished(run_id, timeout=60)
    assert run.status == RunStatus.CANCELLED, run.error
    first.stop()

    prefix = run.storage_prefix
    # The split's images (all in train: the fixture's split has no val or test) were fetched into the worker's cache.
    assert split_images <= set(files_under(tmp_path / "gpu-1" / "cache"))
    # Checkpoints and samples are in the bucket, rotated as the database says; the worker's media folder is empty.
    alive = Checkpoint.objects.filter(run=run, deleted_at__isnull=True)
    assert s3_media.keys(f"{prefix}/checkpoints/") == sorted(alive.values_list("file", flat=True))
    assert alive.filter(step=run.step).exists()  # saved on the way out
    samples = sorted(Sample.objects.filter(run=run).values_list("image", flat=True))
    assert samples and s3_media.keys(f"{prefix}/samples/") == samples
    assert files_under(tmp_path / "gpu-1" / "media") == [] and files_under(settings.MEDIA_ROOT) == []

    # Members see the samples through the web, streamed from the bucket.
    detail = client_for(bob).get(f"/api/v1/runs/{run_id}/").json()
    grid = client_for(bob).get(detail["samples"][0]["image_url"])
    assert grid.status_code == 200
    assert Image.open(io.BytesIO(b"".join(grid.streaming_content))).size == (6 * 32, 4 * 32)

    # A fresh machine, with an empty cache, resumes from the checkpoint in the bucket.
    second = gpu_machine("gpu-2")
    assert client.post(f"/api/v1/runs/{run_id}/resume/").status_code == 200
    wait_for(lambda: MetricPoint.objects.filter(run_id=run_id, step__gt=run.step).exists(), timeout=180,
             what="metrics after the resume")
    client.post(f"/api/v1/runs/{run_id}/cancel/")
    resumed = finished(run_id, timeout=60)
    second.stop()
    assert resumed.attempts == 2 and resumed.history[-1]["from_step"] == run.step  # continued, not restarted
    alive = Checkpoint.objects.filter(run=run, deleted_at__isnull=True)
    assert alive.count() <= 3  # keep_checkpoints, counted across both machines
    assert s3_media.keys(f"{prefix}/checkpoints/") == sorted(alive.values_list("file", flat=True))

    # The owner downloads the generators: made by the web from the checkpoint in the bucket, stored there too.
    weights = client.get(f"/api/v1/runs/{run_id}/weights/")
    assert weights.status_code == 200
    path = tmp_path / "generators.pt"
    path.write_bytes(b"".join(weights.streaming_content))
    assert load_generator(path, "AB")(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert any(key.endswith("-generators.pt") for key in s3_media.keys(f"{prefix}/exports/"))
    assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLED


def test_translate_weights_and_augmentations_use_the_checkpoints_in_the_bucket(
    s3_media: S3Media, trained_run: Run, settings: Any, tmp_path: Any, alice: Any, client_for: Callable,
) -> None:
    import hashlib
    import json
    import zipfile

    import numpy as np

    from training import use
    from training.models import Augmentation, AugmentationStatus

    prefix = trained_run.storage_prefix
    alive = Checkpoint.objects.filter(run=trained_run, deleted_at__isnull=True).order_by("step")
    assert s3_media.keys(f"{prefix}/checkpoints/") == [c.file.name for c in alive]
    assert files_under(settings.MEDIA_ROOT) == []

    # The web (a cache of its own) translates with a copy of the checkpoint fetched from the bucket.
    settings.WINNOW_MEDIA_CACHE = tmp_path / "web-cache"
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (33, 45, 3), dtype=np.uint8)).save(photo, "PNG")
    photo.seek(0)
    photo.name = "photo.png"
    response = client_for(alice).post(f"/api/v1/runs/{trained_run.pk}/translate/", {"image": photo, "direction": "AB"},
                                      format="multipart")
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (45, 33)
    newest = alive.last()
    assert (settings.WINNOW_MEDIA_CACHE / newest.file.name).read_bytes() == s3_media.read(newest.file.name)

    # An augmentation on a machine with an empty cache: its zip is stored whole in the bucket and downloads.
    settings.WINNOW_MEDIA_CACHE = tmp_path / "another-machine-cache"
    augmentation = Augmentation.objects.create(run=trained_run, checkpoint=newest, direction="BA", count=2,
                                               requested_by=alice)
    use.execute_augmentation(augmentation_id=augmentation.pk)
    augmentation.refresh_from_db()
    assert augmentation.status == AugmentationStatus.SUCCEEDED, augmentation.error
    assert s3_media.keys(f"{prefix}/augmentations/") == [augmentation.file.name]
    download = client_for(alice).get(f"/api/v1/augmentations/{augmentation.pk}/download/")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert body == s3_media.read(augmentation.file.name)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("manifest.json"))
    assert manifest["count"] == 2
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256(s3_media.read(newest.file.name)).hexdigest()
    assert files_under(settings.MEDIA_ROOT) == []
