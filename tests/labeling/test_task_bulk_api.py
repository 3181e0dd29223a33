"""POST /api/v1/projects/{id}/tasks/bulk/: the data manager's bulk cancel, make gold and send back."""

import pytest

from labeling import answers, leasing, projects
from labeling.models import Annotation, Task, TaskStatus

pytestmark = pytest.mark.django_db


def url(project):
    return f"/api/v1/projects/{project.pk}/tasks/bulk/"


def answer_all(project, annotator, label):
    choice = project.choices.get(label=label).pk
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choice, duration_ms=10)


def test_cancel_takes_queued_tasks_out_and_refuses_the_others_one_by_one(project, alice, bob, client_for, make_batch):
    batch = make_batch(project, 3)
    first, second, third = batch.tasks.order_by("id")
    leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=first, annotator=bob, choice_id=project.choices.first().pk, duration_ms=5)
    response = client_for(alice).post(url(project), {"action": "cancel", "tasks": [second.pk, first.pk, third.pk, 999999]}, format="json")
    assert response.status_code == 200
    assert response.data["summary"] == {"done": 2, "refused": 2}
    by_task = {r["task"]: r for r in response.data["results"]}
    assert by_task[second.pk]["status"] == by_task[third.pk]["status"] == "done"
    assert by_task[first.pk]["status"] == "refused" and "completed" in by_task[first.pk]["detail"]
    assert by_task[999999]["code"] == "not_found"
    statuses = dict(Task.objects.filter(batch=batch).values_list("id", "status"))
    assert statuses == {first.pk: TaskStatus.COMPLETED, second.pk: TaskStatus.CANCELLED, third.pk: TaskStatus.CANCELLED}


def test_make_gold_confirms_calibration_answers_and_refuses_production_tasks(project, alice, bob, client_for, make_batch):
    cal = make_batch(project, 2, kind="calibration", seed=900)
    answer_all(project, bob, "Anime")
    project.gold_rate = 0
    project.save()
    prod = make_batch(project, 1, kind="production", seed=950)
    answer_all(project, bob, "Anime")
    tasks = [*cal.tasks.order_by("id"), prod.tasks.get()]
    neither = project.choices.get(label="Neither").pk
    response = client_for(alice).post(url(project), {"action": "make_gold", "tasks": [t.pk for t in tasks[:1]]}, format="json")
    assert response.data["summary"] == {"done": 1, "refused": 0}
    response = client_for(alice).post(url(project), {"action": "make_gold", "tasks": [tasks[1].pk, tasks[2].pk], "choice": neither},
                                      format="json")
    assert response.data["summary"] == {"done": 1, "refused": 1}
    assert "calibration" in response.data["results"][1]["detail"]
    gold = dict(Task.objects.filter(is_gold=True).values_list("id", "gold_choice__label"))
    assert gold == {tasks[0].pk: "Anime", tasks[1].pk: "Neither"}


def test_relabel_discards_answers_and_queues_the_task_again(project, alice, bob, client_for, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 2, kind="production", seed=980)
    answer_all(project, bob, "Anime")
    first, second = batch.tasks.order_by("id")
    response = client_for(alice).post(url(project), {"action": "relabel", "tasks": [first.pk]}, format="json")
    assert response.data["summary"] == {"done": 1, "refused": 0}
    first.refresh_from_db()
    assert first.status == TaskStatus.QUEUED and first.final_choice is None and first.annotation_count == 0
    assert Annotation.objects.get(task=first).discarded_at is not None
    batch.refresh_from_db()
    assert batch.status == "labeling"
    again = client_for(alice).post(url(project), {"action": "relabel", "tasks": [first.pk]}, format="json")
    assert again.data["results"][0]["code"] == "no_answers"


@pytest.mark.parametrize("body, field", [
    ({"action": "delete", "tasks": [1]}, "action"),
    ({"action": "cancel", "tasks": []}, "tasks"),
    ({"action": "cancel", "tasks": list(range(1, 1002))}, "tasks"),
    ({"action": "cancel", "tasks": ["one"]}, "tasks"),
    ({"action": "cancel", "tasks": [1], "everything": True}, "everything"),
])
def test_bad_bodies_are_refused_naming_the_field(project, alice, client_for, body, field):
    response = client_for(alice).post(url(project), body, format="json")
    assert response.status_code == 400 and field in response.data["fields"]


def test_only_owners_act_and_a_non_member_gets_404(project, bob, carol, mallory, client_for, make_batch):
    task = make_batch(project, 1).tasks.get()
    body = {"action": "cancel", "tasks": [task.pk]}
    assert client_for(bob).post(url(project), body, format="json").status_code == 403
    assert client_for(carol).post(url(project), body, format="json").status_code == 403
    assert client_for(mallory).post(url(project), body, format="json").status_code == 404
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED


def test_tasks_of_another_project_are_unknown_here(project, alice, client_for, make_batch):
    other = projects.create_project(created_by=alice, fields={"name": "Other"},
                                    choices=[{"label": "A", "hotkey": "1", "domain": "A"}, {"label": "B", "hotkey": "2", "domain": "B"}])
    task = make_batch(other, 1).tasks.get()
    response = client_for(alice).post(url(project), {"action": "cancel", "tasks": [task.pk]}, format="json")
    assert response.data["results"][0]["code"] == "not_found"
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED
