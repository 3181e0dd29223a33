"""The official `scaleapi` client against a live Winnow: a Scale Rapid script's whole journey, then its errors.

Tasks are created from image URLs served on loopback and fetched by a real Celery worker; they are
labeled through Winnow's own API, as annotators would, and read back through the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import scaleapi
from rest_framework.authtoken.models import Token
from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleException,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
    ScaleUnauthorized,
)
from scaleapi.tasks import TaskReviewStatus, TaskStatus, TaskType

from labeling import projects
from labeling.models import Batch, BatchKind, Project, Task
from labeling.models import TaskStatus as WinnowTaskStatus
from tests.conftest import wait_for
from tests.labeling.test_webhooks import Receiver

LABELS = ["photo", "anime", "neither"]
PARAMS = {
    "instruction": "Is this image a **photo** or **anime**?",
    "categories": [{"label": "photo", "domain": "A", "description": "A photograph"},
                   {"label": "anime", "domain": "B"}, "neither"],
}


def scale_client(live_server: Any, user: Any) -> scaleapi.ScaleClient:
    key = Token.objects.get_or_create(user=user)[0].key
    return scaleapi.ScaleClient(key, api_instance_url=live_server.url + "/v1")


def label_everything(api: Any, project: Project, answers: Callable[[Task], str]) -> int:
    """Answer every task the annotator is handed through Winnow's API: next-task, then the answer."""
    choices = dict(project.choices.values_list("label", "id"))
    count = 0
    while (leased := api.post(f"/api/v1/projects/{project.pk}/next-task/")).status_code == 200:
        task = Task.objects.get(pk=leased.json()["id"])
        response = api.post(f"/api/v1/tasks/{task.pk}/annotations/", {"choice": choices[answers(task)]}, format="json")
        assert response.status_code == 201, response.json()
        count += 1
    assert leased.status_code == 204
    return count


@pytest.mark.worker
def test_a_scale_rapid_script_runs_unchanged(
    celery_worker: Any, live_server: Any, alice: Any, bob: Any, client_for: Any, settings: Any
) -> None:
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]  # the callback receiver and image host live on loopback
    client = scale_client(live_server, alice)
    name = "Anime/photo sorting"  # a `/` travels percent-encoded in the client's URLs

    with Receiver() as host:
        # Project, with its taxonomy from params.
        created = client.create_project(name, TaskType.Categorization, params=PARAMS)
        assert (created.name, created.type, created.version) == (name, "categorization", 0)
        assert created.instruction == PARAMS["instruction"]
        assert created.params["categories"] == LABELS
        project = Project.objects.get(name=name)
        assert list(project.choices.values_list("label", "domain")) == [("photo", "A"), ("anime", "B"),
                                                                          ("neither", "excluded")]
        assert client.get_project(name).params["domains"] == {"photo": "A", "anime": "B", "neither": "excluded"}
        assert name in [p.name for p in client.get_projects()]
        projects.add_member(project=project, username="bob", role="annotator")

        # A calibration batch of three URL tasks with callbacks.
        calibration = client.create_batch(name, "calibration 1/2", calibration_batch=True, metadata={"round": 1})
        assert (calibration.status, calibration.metadata) == ("staging", {"round": 1})
        tasks = [
            client.create_task(
                TaskType.Categorization, project=name, batch="calibration 1/2", attachment=f"{host.url}/img/{i}.png",
                attachment_type="image", categories=LABELS, unique_id=f"cal-{i}", metadata={"i": i},
                callback_url=f"{host.url}/callback",
            )
            for i in range(3)
        ]
        assert [t.status for t in tasks] == ["pending"] * 3
        assert tasks[0].params["attachment"] == f"{host.url}/img/0.png"
        with pytest.raises(ScaleDuplicateResource, match="cal-0"):
            client.create_task(TaskType.Categorization, project=name, batch="calibration 1/2",
                               attachment=f"{host.url}/img/9.png", unique_id="cal-0")
        wait_for(lambda: Task.objects.filter(project=project, status=WinnowTaskStatus.QUEUED).count() == 3,
                 what="the worker to fetch three images")

        assert client.finalize_batch("calibration 1/2").status == "in_progress"
        with pytest.raises(ScaleInvalidRequest, match="not open"):
            client.finalize_batch("calibration 1/2")
        assert client.batch_status("calibration 1/2") == {"status": "in_progress", "pending": 3, "completed": 0,
                                                         "error": 0, "canceled": 0}

        # Annotators label through Winnow; the client reads the answers back.
        answer_of = {int(t.id): LABELS[t.metadata["i"]] for t in tasks}
        assert label_everything(client_for(bob), project, lambda task: answer_of[task.pk]) == 3
        assert client.get_batch("calibration 1/2").status == "completed"
        done = client.tasks(project=name, batch="calibration 1/2", status="completed")
        assert sorted(t.unique_id for t in done) == ["cal-0", "cal-1", "cal-2"]
        for task in done:
            label = answer_of[int(task.id)]
            assert task.response == {"category": label, "taxonomies": {"category": [label]}}
        assert client.get_task(tasks[1].id).response["category"] == "anime"

        # The owner reviews calibration through audits: accept one, correct another.
        client.audit_task(tasks[0].id, True)
        with pytest.raises(ScaleInvalidRequest, match="right one"):
            client.audit_task(tasks[1].id, False)
        client.api.post_request(f"task/{tasks[1].id}/audit", body={"accepted": False, "category": "neither"})
        assert client.get_task(tasks[0].id).customer_review_status == "accepted"
        fixed = client.get_task(tasks[1].id)
        assert (fixed.customer_review_status, fixed.response["category"]) == ("fixed", "neither")
        assert Task.objects.get(pk=tasks[1].id).gold_choice.label == "neither"
        reviewed = list(client.get_tasks(project_name=name, review_status=[TaskReviewStatus.Accepted,
                                                                            TaskReviewStatus.Fixed]))
        assert sorted(t.unique_id for t in reviewed) == ["cal-0", "cal-1"]

        # No production before the calibration is approved; then production runs like calibration.
        with pytest.raises(ScaleInvalidRequest, match="calibration"):
            client.create_batch(name, "production/1")
        projects.approve_calibration(project=project)
        production = client.create_batch(name, "production/1", callback=f"{host.url}/batch-done")
        assert production.status == "staging"
        for i in range(10, 14):
            client.create_task(TaskType.Categorization, project=name, batch="production/1",
                               attachment=f"{host.url}/img/{i}.png", unique_id=f"prod-{i}")
        wait_for(lambda: Task.objects.filter(batch__name="production/1", status=WinnowTaskStatus.QUEUED).count() == 4,
                 what="the worker to fetch four images")
        client.finalize_batch("production/1")
        total = Task.objects.filter(batch__name="production/1").count()  # with the gold task mixed in
        assert total == 5
        label_everything(client_for(bob), project, lambda task: "photo")

        # Every task with its response, two at a time through next_token.
        listed = list(client.get_tasks(project_name=name, batch_name="production/1", limit=2))
        assert len(listed) == total
        assert len({t.id for t in listed}) == total
        assert all(t.status == "completed" and t.response["category"] in LABELS for t in listed)
        assert client.get_tasks_count(project_name=name, status=TaskStatus.Completed) == 3 + total
        assert [t.unique_id for t in client.tasks(unique_id="prod-12")] == ["prod-12"]

        # Scale's callbacks arrived, signed: one per calibration task, one for the production batch.
        wait_for(lambda: len(host.posts("/callback")) == 3 and len(host.posts("/batch-done")) == 1,
                 what="task and batch callbacks")
        assert {p["headers"]["X-Winnow-Event"] for p in host.posts("/callback")} == {"task.completed"}


# --- the client's error cases -----------------------------------------------------------------


@pytest.fixture
def scale_project(project: Project, make_batch: Callable[..., Batch]) -> Project:
    """The personas' project (made through Winnow's own API) with a finalized calibration batch of 3."""
    make_batch(project, n=3, name="cal")
    return project


def test_the_clients_errors_fire_as_they_do_against_scale(
    live_server: Any, transactional_db: Any, scale_project: Project, alice: Any, bob: Any, mallory: Any,
) -> None:
    client = scale_client(live_server, alice)
    name = scale_project.name

    with pytest.raises(ScaleUnauthorized, match="invalid API key"):
        scaleapi.ScaleClient("not-a-key", api_instance_url=live_server.url + "/v1").get_projects()
    with pytest.raises(ScaleResourceNotFound):
        client.get_task("999999")
    with pytest.raises(ScaleResourceNotFound):
        client.get_task("not-a-task-id")
    with pytest.raises(ScaleResourceNotFound):
        client.get_project("no such project")
    with pytest.raises(ScaleResourceNotFound):
        client.get_batch("no such batch")
    with pytest.raises(ScaleInvalidRequest, match="categorization"):
        client.create_task(TaskType.ImageAnnotation, batch="cal", attachment="https://example.com/a.png")
    with pytest.raises(ScaleInvalidRequest, match="batch is required"):
        client.create_task(TaskType.Categorization, project=name, attachment="https://example.com/a.png")
    with pytest.raises(ScaleInvalidRequest, match="open batch"):
        client.create_task(TaskType.Categorization, batch="cal", attachment="https://example.com/a.png")
    with pytest.raises(ScaleDuplicateResource):
        client.create_project(name, TaskType.Categorization, params={"categories": ["a", "b"]})
    with pytest.raises(ScaleInvalidRequest, match="categorization"):
        client.create_project("new", TaskType.ImageAnnotation, params={"categories": ["a", "b"]})
    with pytest.raises(ScaleInvalidRequest, match="categories"):
        client.create_project("new", TaskType.Categorization, params={"instruction": "no taxonomy"})
    with pytest.raises(ScaleDuplicateResource):
        client.create_batch(name, "cal", calibration_batch=True)
    with pytest.raises(ScaleInvalidRequest, match="not both"):
        client.create_batch(name, "both", calibration_batch=True, self_label_batch=True)
    with pytest.raises(ScaleInvalidRequest, match="tags"):
        client.tasks(project=name, tags="x")
    with pytest.raises(ScaleInvalidRequest, match="next_token"):
        client.tasks(project=name, next_token="garbage")
    with pytest.raises(ScaleInvalidRequest, match="audit"):
        client.audit_task(str(Task.objects.filter(project=scale_project).first().pk), True)  # not completed yet
    assert Project.objects.count() == 1
    assert Batch.objects.count() == 1

    # Cancel: once, with the unique_id cleared on request; a second cancel is "already done" (400, not 409).
    task = Task.objects.filter(project=scale_project).order_by("id").first()
    Task.objects.filter(pk=task.pk).update(unique_id="first")
    client.cancel_task(str(task.pk), clear_unique_id=True)
    task.refresh_from_db()
    assert (task.status, task.unique_id) == (WinnowTaskStatus.CANCELLED, None)
    with pytest.raises(ScaleInvalidRequest, match="cancelled"):
        client.cancel_task(str(task.pk))
    assert client.get_task(str(task.pk)).status == "canceled"

    # Other people's keys: a stranger sees nothing; an annotator may not create.
    stranger = scale_client(live_server, mallory)
    with pytest.raises(ScaleResourceNotFound):
        stranger.get_project(name)
    with pytest.raises(ScaleResourceNotFound):
        stranger.get_task(str(task.pk))
    assert stranger.tasks(project=name).total == 0
    annotator = scale_client(live_server, bob)
    with pytest.raises(ScaleException) as refused:
        annotator.create_batch(name, "mine")
    assert refused.value.code == 403
    assert Batch.objects.count() == 1


def test_self_label_batches_are_pre_production_batches(
    live_server: Any, transactional_db: Any, scale_project: Project, alice: Any
) -> None:
    client = scale_client(live_server, alice)

    batch = client.create_batch(scale_project.name, "mine to label", self_label_batch=True)

    assert (batch.as_dict()["self_label_batch"], batch.as_dict()["calibration_batch"]) == (True, False)
    stored = Batch.objects.get(name="mine to label")
    assert (stored.kind, stored.self_label) == (BatchKind.CALIBRATION, True)
