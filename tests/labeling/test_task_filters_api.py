"""The data manager's filters on GET /api/v1/tasks/: answer, annotator, agreement range, gold, audit, duplicate, failure."""

import pytest

from labeling import answers, leasing, projects, quality
from labeling.models import Task, TaskStatus

pytestmark = pytest.mark.django_db


def ids(client, **params):
    response = client.get("/api/v1/tasks/", {"project": params.pop("project"), **params})
    assert response.status_code == 200, response.data
    return {t["id"] for t in response.data["results"]}


def answer_all(project, annotator, label):
    choice = project.choices.get(label=label).pk
    answered = []
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choice, duration_ms=10)
        answered.append(task.pk)
    return answered


@pytest.fixture
def labeled(project, alice, bob, dave, make_batch):
    """Overlap 2: two tasks both say Photo (agreement 1), two where bob says Photo and dave Anime."""
    project.overlap = 2
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 4, kind="production", seed=500)
    tasks = list(batch.tasks.order_by("id"))
    photo, anime = project.choices.get(label="Photorealistic").pk, project.choices.get(label="Anime").pk
    for task in tasks:
        for who, choice in ((bob, photo), (dave, photo if task.pk in (tasks[0].pk, tasks[1].pk) else anime)):
            leasing.lease_next_task(project=project, annotator=who)
            answers.submit_annotation(task=task, annotator=who, choice_id=choice, duration_ms=10)
    return batch, tasks


def test_answer_annotator_and_agreement_filter_on_the_server(project, alice, dave, client_for, labeled):
    batch, tasks = labeled
    client = client_for(alice)
    agreed = {tasks[0].pk, tasks[1].pk}
    assert ids(client, project=project.pk, agreement_min=0.9) == agreed
    split = {t.pk for t in Task.objects.filter(batch=batch, agreement__lt=0.9)}
    assert ids(client, project=project.pk, agreement_max=0.6) == split
    assert ids(client, project=project.pk, annotator="dave") == {t.pk for t in tasks}
    assert ids(client, project=project.pk, annotator="carol") == set()
    photo = project.choices.get(label="Photorealistic").pk
    assert ids(client, project=project.pk, answer=photo) >= agreed


def test_gold_audit_and_duplicate_filters(project, alice, bob, carol, client_for, make_batch):
    cal = make_batch(project, 3, kind="calibration", seed=600)
    answer_all(project, bob, "Anime")
    for task in cal.tasks.all():
        quality.set_gold(task=task, choice_id=project.choices.get(label="Anime").pk)
    projects.approve_calibration(project=project)
    project.gold_rate = 0.5
    project.save()
    prod = make_batch(project, 4, kind="production", seed=700)
    copies = set(prod.tasks.filter(gold_source__isnull=False).values_list("id", flat=True))
    assert copies
    answer_all(project, bob, "Anime")
    prod.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=prod, size=2, seed=3)
    quality.submit_audit(task=audits[0].task, reviewer=carol, correct=False, choice_id=project.choices.get(label="Neither").pk)
    client = client_for(alice)
    gold = set(Task.objects.filter(project=project, is_gold=True).values_list("id", flat=True))
    assert ids(client, project=project.pk, gold="true") == gold
    assert ids(client, project=project.pk, gold="false").isdisjoint(gold)
    sampled = {a.task_id for a in audits}
    assert ids(client, project=project.pk, audited="yes") == sampled
    assert ids(client, project=project.pk, audited="incorrect") == {audits[0].task_id}
    assert ids(client, project=project.pk, audited="pending") == sampled - {audits[0].task_id}
    assert ids(client, project=project.pk, audited="no").isdisjoint(sampled)
    sources = set(Task.objects.filter(pk__in=copies).values_list("gold_source_id", flat=True))
    assert ids(client, project=project.pk, duplicate="true") == copies | sources
    assert ids(client, project=project.pk, duplicate="false").isdisjoint(copies | sources)


def test_failed_tasks_are_found_by_their_reason(project, alice, client_for):
    batch = projects.create_batch(project=project, name="urls", kind="calibration", created_by=alice)
    Task.objects.bulk_create([
        Task(project=project, batch=batch, source_url="https://a.example/1.jpg", status=TaskStatus.FAILED, error="HTTP 404 from a.example"),
        Task(project=project, batch=batch, source_url="https://a.example/2.jpg", status=TaskStatus.FAILED, error="no answer within 15 s"),
    ])
    client = client_for(alice)
    found = client.get("/api/v1/tasks/", {"project": project.pk, "error": "404"}).data["results"]
    assert [t["error"] for t in found] == ["HTTP 404 from a.example"]


@pytest.mark.parametrize("params, field", [
    ({"agreement_min": "high"}, "agreement_min"),
    ({"agreement_min": "1.5"}, "agreement_min"),
    ({"agreement_min": "0.8", "agreement_max": "0.2"}, "agreement_max"),
    ({"gold": "maybe"}, "gold"),
    ({"audited": "sometimes"}, "audited"),
    ({"answer": "photo"}, "answer"),
    ({"status": "done"}, "status"),
    ({"batch": "first"}, "batch"),
])
def test_bad_filter_values_are_refused_naming_the_parameter(project, alice, client_for, params, field):
    response = client_for(alice).get("/api/v1/tasks/", {"project": project.pk, **params})
    assert response.status_code == 400
    assert field in response.data["fields"]


def test_a_non_member_lists_nothing(project, mallory, client_for, make_batch):
    make_batch(project, 2)
    response = client_for(mallory).get("/api/v1/tasks/", {"project": project.pk, "gold": "false"})
    assert response.status_code == 200 and response.data["results"] == []
