"""Images and exports in S3-compatible object storage: uploads land in the bucket and nowhere on disk,
the protected media view serves them from there with the same rules, exports written by another
machine download from the web, and an unreachable storage is a clear 503 that records nothing.

The storage is a real S3 server on loopback (moto's server mode, tests/conftest.py), not a mock.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone
from PIL import Image

from labeling import exports, ingest
from labeling.models import Asset, Batch, Export, ExportStatus, Task
from tests.conftest import REPO, S3Media, files_under, free_port, jpeg_bytes, png_bytes, zip_bytes
from tests.labeling import test_ingest_urls
from winnow import media

pytestmark = pytest.mark.django_db


@pytest.fixture
def image_server() -> Iterator[str]:
    """A loopback web server with an image at /img.png (the handler of test_ingest_urls)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), test_ingest_urls.Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"localhost:{server.server_address[1]}"
    server.shutdown()


def _named(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def upload(client: Any, batch_id: int, files: list[tuple[str, bytes]]) -> Any:
    return client.post(f"/api/v1/batches/{batch_id}/tasks/", {"files": [_named(n, d) for n, d in files]},
                       format="multipart")


@pytest.fixture
def batch_id(project: Any, alice: Any, client_for: Any) -> int:
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/batches/", {"name": "cal", "kind": "calibration"})
    assert response.status_code == 201, response.data
    return response.data["id"]


def test_uploaded_files_and_zips_are_stored_in_the_bucket_and_nothing_on_disk(
    s3_media: S3Media, settings: Any, batch_id: int, alice: Any, client_for: Any
) -> None:
    archive = zip_bytes({"in-zip/c.png": png_bytes(3), "in-zip/d.png": png_bytes(4)})
    response = upload(client_for(alice), batch_id, [("a.png", png_bytes(1, 300)), ("b.jpg", jpeg_bytes(2)),
                                                    ("more.zip", archive)])
    assert response.status_code == 201, response.data
    assert response.data["summary"] == {"created": 4, "duplicate": 0, "rejected": 0}

    stored = Asset.objects.order_by("id")
    expected = sorted([a.file.name for a in stored] + [a.thumbnail.name for a in stored])
    assert s3_media.keys() == expected
    assert all(name.startswith(("assets/", "thumbs/")) for name in expected)
    first = Task.objects.get(pk=response.data["items"][0]["task_id"]).asset
    assert s3_media.read(first.file.name) == png_bytes(1, 300)
    thumb = Image.open(io.BytesIO(s3_media.read(first.thumbnail.name)))
    assert thumb.format == "JPEG" and max(thumb.size) == settings.THUMBNAIL_SIZE
    assert files_under(settings.MEDIA_ROOT) == [] and files_under(settings.WINNOW_MEDIA_CACHE) == []

    again = upload(client_for(alice), batch_id, [("a-again.png", png_bytes(1, 300))])
    assert again.data["summary"] == {"created": 0, "duplicate": 1, "rejected": 0}
    assert s3_media.keys() == expected  # deduplicated by content: stored once


def test_images_in_the_bucket_are_served_to_members_and_hidden_from_strangers(
    s3_media: S3Media, project: Any, alice: Any, bob: Any, mallory: Any, client: Any, client_for: Any,
    make_batch: Any,
) -> None:
    task = make_batch(project, 1).tasks.get()
    image, thumb = f"/media/{task.asset.file.name}", f"/media/{task.asset.thumbnail.name}"
    for user in (alice, bob):
        response = client_for(user).get(image)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        body = b"".join(response.streaming_content)
        assert body == s3_media.read(task.asset.file.name) and int(response["Content-Length"]) == len(body)
        assert response["Cache-Control"] == "private, max-age=31536000, immutable"
        assert client_for(user).get(thumb).status_code == 200
    assert client_for(mallory).get(image).status_code == 404  # a stranger learns nothing
    assert client_for(mallory).get(thumb).status_code == 404
    assert client.get(image).status_code == 401
    assert client_for(alice).get("/media/assets/00/none.png").status_code == 404
    assert client_for(alice).get(f"/media/assets/../{task.asset.file.name}").status_code == 404

    # A signed link serves the one file to anyone until it expires, from the bucket too.
    link = media.signed_url("http://testserver", task.asset.file.name)
    response = client.get(link.removeprefix("http://testserver"))
    assert response.status_code == 200 and b"".join(response.streaming_content) == s3_media.read(task.asset.file.name)
    tampered = link.replace("/signed-media/", "/signed-media/x")
    assert client.get(tampered.removeprefix("http://testserver")).status_code == 403


@pytest.mark.parametrize("fault", ["server unreachable", "bucket missing"])
def test_an_upload_while_the_storage_fails_is_a_clear_503_and_records_nothing(
    s3_media: S3Media, settings: Any, batch_id: int, alice: Any, client_for: Any, fault: str
) -> None:
    good = settings.STORAGES["default"]
    broken = ({"AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"} if fault == "server unreachable"
              else {"AWS_STORAGE_BUCKET_NAME": "no-such-bucket"})
    settings.STORAGES = {**settings.STORAGES, "default": s3_media.storage_settings(**broken)}
    response = upload(client_for(alice), batch_id, [("a.png", png_bytes(11)), ("b.png", png_bytes(12))])
    assert response.status_code == 503, response.data
    assert response.data["code"] == "storage_unavailable"
    assert response.data["detail"].startswith("the media storage is unavailable: could not store assets/")
    assert "send the request again" in response.data["detail"]
    assert not Asset.objects.exists() and not Task.objects.exists()
    assert Batch.objects.get(pk=batch_id).status == "open"

    settings.STORAGES = {**settings.STORAGES, "default": good}  # the storage is back: the same request works
    response = upload(client_for(alice), batch_id, [("a.png", png_bytes(11)), ("b.png", png_bytes(12))])
    assert response.status_code == 201 and response.data["summary"]["created"] == 2


def test_a_url_download_while_the_storage_fails_marks_the_task_failed_with_the_reason(
    s3_media: S3Media, settings: Any, image_server: str, project: Any, make_batch: Any,
) -> None:
    batch = make_batch(project, 0, finalize=False)
    ingest.ingest_urls(batch=batch, items=[{"image_url": f"http://{image_server}/img.png", "unique_id": "u"}])
    task = Task.objects.get(unique_id="u")
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]
    settings.STORAGES = {**settings.STORAGES, "default": s3_media.storage_settings(AWS_STORAGE_BUCKET_NAME="gone")}
    ingest.download_task_images(task_ids=[task.pk])
    task.refresh_from_db()
    assert task.status == "failed" and task.asset_id is None
    assert task.error.startswith("the media storage is unavailable: could not store assets/")
    assert not Asset.objects.exists()


@pytest.mark.worker
def test_an_export_written_on_another_machine_is_stored_in_the_bucket_and_downloads(
    s3_media: S3Media, transactional_db: Any, settings: Any, worker_env: dict[str, str], tmp_path: Any,
    project: Any, alice: Any, bob: Any, client_for: Any, make_batch: Any,
) -> None:
    make_batch(project, 3)
    export = Export.objects.create(project=project, format="ndjson", requested_by=alice)
    # The worker's machine: its own (empty) media folder and cache; the database and the bucket are shared.
    worker_media, worker_cache = tmp_path / "worker-media", tmp_path / "worker-cache"
    env = {**worker_env, **s3_media.env, "MEDIA_ROOT": str(worker_media), "WINNOW_MEDIA_CACHE": str(worker_cache)}
    code = f"import django; django.setup(); from labeling import exports; exports.run_export(export_id={export.pk})"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)

    export.refresh_from_db()
    assert export.status == ExportStatus.DONE, export.error
    assert export.file.startswith(f"exports/{project.pk}/export-{export.pk}-")
    assert s3_media.keys(f"exports/{project.pk}/") == [export.file]
    stored = s3_media.read(export.file)
    assert export.byte_size == len(stored) and len(stored.splitlines()) == 3

    url = f"/api/v1/projects/{project.pk}/exports/{export.pk}/download/"
    download = client_for(alice).get(url)
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="project-{project.pk}-export-{export.pk}.ndjson"'
    assert b"".join(download.streaming_content) == stored
    assert {json.loads(line)["id"] for line in stored.splitlines()} == set(project.tasks.values_list("id", flat=True))
    assert client_for(bob).get(url).status_code == 403  # exports are the owners'
    assert files_under(worker_media) == [] and files_under(settings.MEDIA_ROOT) == []

    # Expired exports lose their object.
    settings.EXPORT_RETENTION_HOURS = 1
    Export.objects.filter(pk=export.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    assert exports.prune_exports() == 1
    assert s3_media.keys(f"exports/{project.pk}/") == []
    assert client_for(alice).get(url).json()["code"] == "expired"
