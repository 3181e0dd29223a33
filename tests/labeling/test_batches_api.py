"""Batches: the calibration gate, finalizing, status and counts."""

import pytest

from labeling import answers, leasing
from labeling.models import Batch

# A member in another role is told who may (403); a stranger learns nothing, not even that it exists (404).
REFUSED = {"bob": 403, "carol": 403, "mallory": 404}

pytestmark = pytest.mark.django_db


def test_it_refuses_production_before_calibration(project, alice, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/batches/", {"name": "p1", "kind": "production"})
    assert response.status_code == 409
    assert response.data["code"] == "calibration_required"
    assert "approve-calibration" in response.data["detail"]
    assert not Batch.objects.exists()


def test_calibration_cannot_be_approved_before_a_calibration_batch_is_labeled(project, alice, client_for, make_batch):
    make_batch(project, 2)
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/approve-calibration/")
    assert response.status_code == 409
    assert "labeled" in response.data["detail"]
    project.refresh_from_db()
    assert project.calibration_approved_at is None


def test_production_opens_once_calibration_is_labeled_and_approved(project, alice, bob, client_for, make_batch):
    batch = make_batch(project, 2)
    choice = project.choices.first()
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=choice.pk, duration_ms=5)
    batch.refresh_from_db()
    assert batch.status == "labeled"
    client = client_for(alice)
    unreviewed = client.post(f"/api/v1/projects/{project.pk}/approve-calibration/")
    assert unreviewed.status_code == 409 and unreviewed.data["code"] == "calibration_not_reviewed"
    task = batch.tasks.first()
    assert client.post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": choice.pk}).status_code == 200
    assert client.post(f"/api/v1/projects/{project.pk}/approve-calibration/").status_code == 200
    response = client.post(f"/api/v1/projects/{project.pk}/batches/", {"name": "p1", "kind": "production"})
    assert response.status_code == 201
    assert response.data["kind"] == "production" and response.data["status"] == "open"


def test_finalize_moves_open_to_finalized_once(project, alice, client_for, make_batch):
    batch = make_batch(project, 3, finalize=False)
    client = client_for(alice)
    response = client.post(f"/api/v1/batches/{batch.pk}/finalize/")
    assert response.status_code == 200
    assert response.data["status"] == "finalized"
    assert response.data["counts"]["queued"] == 3 and response.data["counts"]["total"] == 3
    again = client.post(f"/api/v1/batches/{batch.pk}/finalize/")
    assert again.status_code == 409
    assert "not open" in again.data["detail"]


def test_an_empty_batch_cannot_be_finalized(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/finalize/")
    assert response.status_code == 409
    batch.refresh_from_db()
    assert batch.status == "open"


def test_batch_names_are_unique_per_project(project, alice, client_for):
    client = client_for(alice)
    assert client.post(f"/api/v1/projects/{project.pk}/batches/", {"name": "x", "kind": "calibration"}).status_code == 201
    response = client.post(f"/api/v1/projects/{project.pk}/batches/", {"name": "x", "kind": "calibration"})
    assert response.status_code == 409
    assert "already has a batch named" in response.data["detail"]


@pytest.mark.parametrize("who", ["bob", "carol", "mallory"])
def test_only_owners_create_or_finalize_batches(project, client_for, make_batch, who, request):
    client = client_for(request.getfixturevalue(who))
    assert client.post(f"/api/v1/projects/{project.pk}/batches/", {"name": "y", "kind": "calibration"}).status_code == REFUSED[who]
    batch = make_batch(project, 1, finalize=False)
    assert client.post(f"/api/v1/batches/{batch.pk}/finalize/").status_code == REFUSED[who]
    batch.refresh_from_db()
    assert batch.status == "open"


def test_a_member_reads_batch_status_and_a_non_member_cannot(project, bob, mallory, client_for, make_batch):
    batch = make_batch(project, 2)
    response = client_for(bob).get(f"/api/v1/batches/{batch.pk}/")
    assert response.status_code == 200
    assert response.data["status"] == "finalized" and response.data["progress"] == 0
    assert client_for(mallory).get(f"/api/v1/batches/{batch.pk}/").status_code == 404


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data/"])
def test_a_callback_url_pointing_inward_is_refused_when_the_batch_is_created(project, alice, client_for, url, settings):
    settings.INGEST_ALLOWED_HOSTS = []

    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/batches/", {"name": "c1", "callback_url": url})

    assert response.status_code == 400
    assert "callback_url" in response.data["detail"] and "internal address" in response.data["detail"]
    assert not Batch.objects.exists()


def test_a_scale_batch_callback_pointing_inward_is_refused_when_created(project, alice, settings):
    import base64

    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    settings.INGEST_ALLOWED_HOSTS = []
    client = APIClient()
    key = Token.objects.get_or_create(user=alice)[0].key
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode())

    response = client.post("/v1/batches", {"project": project.name, "name": "c1", "calibration_batch": True,
                                           "callback": "http://169.254.169.254/"}, format="json")

    assert response.status_code == 400
    assert "internal address" in response.json()["error"]
    assert not Batch.objects.exists()
