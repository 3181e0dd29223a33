"""The media storage on S3: chosen by a setting, checked by /readyz, and the local copies workers read.

Every test here talks to a real S3-compatible server on loopback (moto's server mode, tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from tests.conftest import REPO, S3Media, files_under, free_port
from winnow import storage
from winnow.settings import media_storage

pytestmark = pytest.mark.django_db


def test_a_bucket_name_alone_turns_s3_on_and_the_default_stays_the_folder() -> None:
    code = "import django; django.setup(); from django.conf import settings; print(settings.STORAGES['default'])"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "winnow.settings", "AWS_STORAGE_BUCKET_NAME": "media-bucket",
           "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}
    env.pop("WINNOW_STORAGE", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "storages.backends.s3.S3Storage" in out.stdout and "'bucket_name': 'media-bucket'" in out.stdout
    env.pop("AWS_STORAGE_BUCKET_NAME")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "FileSystemStorage" in out.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"WINNOW_STORAGE": "s3"}, "needs AWS_STORAGE_BUCKET_NAME"),
    ({"AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ENDPOINT_URL": "minio:9000"}, "AWS_S3_ENDPOINT_URL must be an http"),
    ({"AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ADDRESSING_STYLE": "sideways"}, "AWS_S3_ADDRESSING_STYLE must be"),
    ({"AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_MAX_ATTEMPTS": "0"}, "AWS_S3_MAX_ATTEMPTS must be at least 1"),
])
def test_bad_s3_settings_fail_loudly(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name in ("AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL", "AWS_S3_ADDRESSING_STYLE", "AWS_S3_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        media_storage("s3")
    with pytest.raises(ImproperlyConfigured, match="WINNOW_STORAGE must be filesystem or s3"):
        media_storage("ftp")


def test_readyz_checks_the_bucket_when_s3_is_the_storage(s3_media: S3Media, settings: Any) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "checked": ["database", "broker", "storage"]}
    assert s3_media.keys() == []  # the probe object was deleted
    assert not settings.MEDIA_ROOT.exists()  # the folder was not what got checked

    settings.STORAGES = {**settings.STORAGES, "default": s3_media.storage_settings(AWS_STORAGE_BUCKET_NAME="no-such-bucket")}
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert list(response.json()["failed"]) == ["storage"]
    assert "the bucket 'no-such-bucket' does not exist" in response.json()["failed"]["storage"]


@contextlib.contextmanager
def a_server_that_stops(settings: Any, bucket: str) -> Iterator[int]:
    """An S3 server of the test's own, with `bucket` made and chosen as the media storage, stopped when
    the block ends (however it ends); yields its port. What the test does after the block meets a dead
    endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        media = S3Media(f"http://127.0.0.1:{port}", bucket)
        media.client.create_bucket(Bucket=media.bucket)
        settings.STORAGES = {**settings.STORAGES, "default": media.storage_settings()}
        yield port
    finally:
        server.stop()


def test_readyz_reports_the_storage_down_when_the_s3_server_stops(settings: Any) -> None:
    with a_server_that_stops(settings, "winnow-readyz") as port:
        assert Client().get("/readyz").status_code == 200
    response = Client().get("/readyz")
    assert response.status_code == 503
    failed = response.json()["failed"]
    assert list(failed) == ["storage"] and "EndpointConnectionError" in failed["storage"]
    assert f"127.0.0.1:{port}" in failed["storage"]  # says which server it could not reach


def test_put_replaces_whole_files_and_local_copies_follow_the_stored_version(s3_media: S3Media, settings: Any) -> None:
    assert storage.put_bytes("runs/1-key/checkpoints/step_1.pt", b"first") == 5
    assert s3_media.read("runs/1-key/checkpoints/step_1.pt") == b"first"
    copy = storage.local_copy("runs/1-key/checkpoints/step_1.pt")
    assert copy.read_bytes() == b"first" and copy.is_relative_to(settings.WINNOW_MEDIA_CACHE)
    # Stored again under the same name (a resumed run writes that step again): the copy is fetched anew.
    storage.put_bytes("runs/1-key/checkpoints/step_1.pt", b"second, longer")
    assert storage.local_copy("runs/1-key/checkpoints/step_1.pt").read_bytes() == b"second, longer"
    assert storage.exists("runs/1-key/checkpoints/step_1.pt")

    target = storage.work_path("runs/1-key/samples/step_2.png")
    assert target.parent.is_dir()  # work_path makes the folder to write into
    target.write_bytes(b"png")
    storage.publish("runs/1-key/samples/step_2.png")
    assert s3_media.read("runs/1-key/samples/step_2.png") == b"png"

    storage.delete("runs/1-key/checkpoints/step_1.pt")
    assert not storage.exists("runs/1-key/checkpoints/step_1.pt")
    assert not (settings.WINNOW_MEDIA_CACHE / "runs/1-key/checkpoints/step_1.pt").exists()
    with pytest.raises(FileNotFoundError):
        storage.local_copy("runs/1-key/checkpoints/step_1.pt")
    with pytest.raises(ValueError, match="not a storage name"):
        storage.local_copy("../outside")
    assert files_under(settings.MEDIA_ROOT) == []


def test_a_write_that_fails_stores_nothing(s3_media: S3Media) -> None:
    def half(handle: Any) -> None:
        handle.write(b"half an export")
        raise RuntimeError("the export's query failed")

    with pytest.raises(RuntimeError, match="query failed"):
        storage.put("exports/1/export-1-x.json", half)
    assert s3_media.keys() == []


def test_reads_and_uploads_name_what_failed_when_the_s3_server_stops(settings: Any) -> None:
    from winnow.exceptions import StorageUnavailable

    with a_server_that_stops(settings, "winnow-outage"):
        storage.put_bytes("splits/1/v1.json", b"{}")
        with storage.opened("splits/1/v1.json", "the manifest of split v1") as handle:
            assert handle.read() == b"{}"
        with pytest.raises(FileNotFoundError), storage.opened("splits/1/v2.json") as handle:
            handle.read()
        storage.work_path("runs/2-key/samples/step_1.png").write_bytes(b"png")
    with pytest.raises(StorageUnavailable, match="could not read the manifest of split v1"):
        with storage.opened("splits/1/v1.json", "the manifest of split v1") as handle:
            handle.read()
    with pytest.raises(StorageUnavailable, match="could not store runs/2-key/samples/step_1.png"):
        storage.publish("runs/2-key/samples/step_1.png")
    assert (settings.WINNOW_MEDIA_CACHE / "runs/2-key/samples/step_1.png").read_bytes() == b"png"  # kept to retry
