"""Split manifests in S3-compatible object storage: stored there, and an outage is a clear 503 that records nothing."""

from collections.abc import Callable
from typing import Any

from labeling.models import Split
from labeling.splits import manifest_name
from tests.conftest import S3Media, free_port


def test_a_split_manifest_goes_to_the_bucket_and_an_outage_records_no_split(
    s3_media: S3Media, settings: Any, project: Any, accepted_batch: Callable, alice: Any, client_for: Callable
) -> None:
    accepted_batch(project, "AAAABBBBB-")
    client = client_for(alice)
    good = settings.STORAGES["default"]
    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_media.storage_settings(AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")}
    response = client.post(f"/api/v1/projects/{project.pk}/splits/", {"val_fraction": 0, "test_fraction": 0},
                           format="json")
    assert response.status_code == 503, response.json()
    body = response.json()
    assert body["code"] == "storage_unavailable" and "could not store splits/" in body["detail"]
    assert not Split.objects.exists()  # nothing half-recorded

    settings.STORAGES = {**settings.STORAGES, "default": good}  # the storage is back: the same request works
    response = client.post(f"/api/v1/projects/{project.pk}/splits/", {"val_fraction": 0, "test_fraction": 0},
                           format="json")
    assert response.status_code == 201, response.json()
    split = Split.objects.get()
    assert s3_media.keys("splits/") == [manifest_name(split)]
    manifest = client.get(f"/api/v1/splits/{split.pk}/manifest/")
    assert manifest.status_code == 200 and b'"items"' in b"".join(manifest.streaming_content
                                                                  if manifest.streaming else [manifest.content])

    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_media.storage_settings(AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")}
    response = client.get(f"/api/v1/splits/{split.pk}/manifest/")
    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"
