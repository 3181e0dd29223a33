"""Listing and reading tasks: filters, cursor pagination, scoping."""

import pytest

from labeling import answers, leasing

pytestmark = pytest.mark.django_db


def test_tasks_list_by_batch_and_status_with_cursor_pages(project, alice, bob, client_for, make_batch):
    first = make_batch(project, 5, seed=0)
    make_batch(project, 3, seed=100)
    task = leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=task, annotator=bob, choice_id=project.choices.first().pk, duration_ms=9)
    client = client_for(alice)
    page = client.get(f"/api/v1/tasks/?batch={first.pk}&page_size=2")
    assert page.status_code == 200
    ids = [t["id"] for t in page.data["results"]]
    assert len(ids) == 2
    second = client.get(page.data["next"])
    assert [t["id"] for t in second.data["results"]][0] > ids[-1]
    done = client.get(f"/api/v1/tasks/?batch={first.pk}&status=completed")
    assert [t["id"] for t in done.data["results"]] == [task.pk]
    row = done.data["results"][0]
    assert row["answer"] == "Photorealistic" and row["annotations"][0]["annotator"] == "bob"
    assert row["asset"]["thumbnail_url"].endswith(".jpg")


def test_bad_filters_are_400(project, alice, client_for):
    client = client_for(alice)
    assert client.get("/api/v1/tasks/?status=nonsense").status_code == 400
    assert client.get("/api/v1/tasks/?batch=abc").status_code == 400


def test_a_non_member_sees_no_tasks(project, mallory, client_for, make_batch):
    batch = make_batch(project, 2)
    client = client_for(mallory)
    assert client.get(f"/api/v1/tasks/?batch={batch.pk}").data["results"] == []
    task_id = batch.tasks.first().pk
    assert client.get(f"/api/v1/tasks/{task_id}/").status_code == 404


def test_an_owner_cancels_a_queued_task(project, alice, bob, client_for, make_batch):
    batch = make_batch(project, 2)
    task = batch.tasks.first()
    assert client_for(bob).post(f"/api/v1/tasks/{task.pk}/cancel/").status_code == 403
    response = client_for(alice).post(f"/api/v1/tasks/{task.pk}/cancel/")
    assert response.status_code == 200 and response.data["status"] == "cancelled"
    assert client_for(alice).post(f"/api/v1/tasks/{task.pk}/cancel/").status_code == 409
