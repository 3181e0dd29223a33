"""Stored files are private: images to the members of a project that uses them, exports and run
files to owners; the health check answers."""

from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from labeling import ingest, projects
from labeling.models import Asset
from tests.conftest import CHOICES
from winnow.media import may_read as may_read_media

pytestmark = pytest.mark.django_db


def test_images_need_a_signed_in_user(project, bob, client, client_for, make_batch):
    task = make_batch(project, 1).tasks.get()
    url = f"/media/{task.asset.file.name}"
    assert client.get(url).status_code == 401
    assert client_for(bob).get(url).status_code == 200
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_images_are_private_to_the_members_of_a_project_that_uses_them(project, alice, bob, mallory, client_for,
                                                                      make_batch, make_png):
    task = make_batch(project, 1).tasks.get()
    image, thumb = f"/media/{task.asset.file.name}", f"/media/{task.asset.thumbnail.name}"
    for user in (alice, bob):
        assert client_for(user).get(image).status_code == 200 and client_for(user).get(thumb).status_code == 200
    other = projects.create_project(created_by=mallory, fields={"name": "Mallory's"}, choices=CHOICES)
    assert client_for(mallory).get(image).status_code == 404  # a member of another project only
    assert client_for(mallory).get(thumb).status_code == 404
    # The same picture uploaded to mallory's project is hers to see too (one stored copy, content-addressed).
    batch = projects.create_batch(project=other, name="same picture", kind="calibration", created_by=mallory)
    with task.asset.file.open("rb") as handle:
        ingest.ingest_files(batch=batch, files=[("again.png", handle)])
    assert Asset.objects.count() == 1
    assert client_for(mallory).get(image).status_code == 200
    project.deleted_at = timezone.now()
    project.save()
    assert client_for(bob).get(image).status_code == 404  # the project is gone


def test_project_files_follow_the_project_roles(project, alice, bob, carol, mallory):
    assert may_read_media(bob, f"splits/{project.pk}/v1-abc.json")  # members read splits
    assert not may_read_media(mallory, f"splits/{project.pk}/v1-abc.json")
    assert may_read_media(alice, f"exports/{project.pk}/export-1-x.json")  # exports are the owners'
    assert not may_read_media(carol, f"exports/{project.pk}/export-1-x.json")
    assert not may_read_media(bob, f"exports/{project.pk}/export-1-x.json")
    for path in ("settings.py", "exports/x/a.json", "runs/1-x/samples/a.png", "other/1/a.png", f"exports/{project.pk}"):
        assert not may_read_media(alice, path), path


def test_run_samples_are_the_members_and_other_run_files_the_owners(project, alice, bob, mallory):
    from training.models import Run

    split = project.splits.create(version=1, manifest_sha256="0" * 64, created_by=alice)
    run = Run.objects.create(project=project, split=split, requested_by=alice)
    prefix = run.storage_prefix
    assert may_read_media(bob, f"{prefix}/samples/step_1.png")
    assert not may_read_media(mallory, f"{prefix}/samples/step_1.png")
    assert may_read_media(alice, f"{prefix}/checkpoints/step_1.pt")
    assert not may_read_media(bob, f"{prefix}/checkpoints/step_1.pt")
    wrong_key = f"runs/{run.pk}-{'x' * len(run.storage_key)}/samples/step_1.png"
    assert not may_read_media(alice, wrong_key)


def test_an_export_file_is_served_to_its_owner_and_hidden_from_others(project, alice, bob, client_for):
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(project.pk)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export-1-token.json").write_text("[]")
    url = f"/media/exports/{project.pk}/export-1-token.json"
    assert client_for(alice).get(url).status_code == 200
    assert client_for(bob).get(url).status_code == 404


def test_paths_outside_the_media_folder_are_404(bob, client):
    client.force_login(bob)
    assert client.get("/media/../settings.py").status_code == 404
    assert client.get("/media/assets/none.png").status_code == 404


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
