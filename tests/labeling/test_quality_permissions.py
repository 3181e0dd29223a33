"""Who may call the quality endpoints, and bad input that is refused without storing anything."""

import pytest

from labeling import answers, leasing, projects, quality
from labeling.models import Audit, Batch, Membership, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def sampled(project, bob, make_batch):
    """A labeled production batch of 4 (bob answered Anime throughout) with an audit sample of 2 drawn."""
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 4, kind="production", seed=5000)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=500)
    batch, audits = quality.draw_audit_sample(batch=Batch.objects.get(pk=batch.pk), size=2, seed=1)
    return batch, audits


def endpoints(project, batch, task):
    """(method, url, body, who may call it) for every quality endpoint."""
    p, b, t = project.pk, batch.pk, task.pk
    owner, reviewers = {"alice"}, {"alice", "carol"}
    return [
        ("post", f"/api/v1/tasks/{t}/gold/", {"choice": 1}, owner),
        ("post", f"/api/v1/tasks/{t}/audit/", {"correct": True}, reviewers),
        ("get", f"/api/v1/projects/{p}/calibration/", None, owner),
        ("get", f"/api/v1/projects/{p}/annotators/", None, owner),
        ("post", f"/api/v1/projects/{p}/annotators/bob/reinstate/", None, owner),
        ("post", f"/api/v1/projects/{p}/annotators/bob/relabel/", None, owner),
        ("get", f"/api/v1/projects/{p}/audits/", None, reviewers),
        ("get", f"/api/v1/batches/{b}/audit/", None, owner),
        ("post", f"/api/v1/batches/{b}/audit/", {"size": 2}, owner),
        ("get", f"/api/v1/batches/{b}/quality/", None, reviewers),
        ("post", f"/api/v1/batches/{b}/relabel/", {"scope": "all"}, owner),
        ("get", f"/api/v1/batches/{b}/consensus/", None, reviewers),
    ]


@pytest.mark.parametrize("who", ["mallory", "bob", "carol"])
def test_each_quality_endpoint_refuses_callers_without_the_role(sampled, project, client_for, who, request):
    batch, audits = sampled
    client = client_for(request.getfixturevalue(who))
    for method, url, body, allowed in endpoints(project, batch, audits[0].task):
        if who in allowed:
            continue
        response = getattr(client, method)(url, body, format="json")
        # A stranger learns nothing (404, as for no such object); a member in another role is told who may.
        assert response.status_code == (404 if who == "mallory" else 403), (method, url, response.status_code)
        expected = "not a member" if who == "mallory" else "only the project's"
        assert expected in str(response.data["detail"]), url
    # Nothing changed: no verdict, the batch still audited, bob's answers live and bob not paused.
    assert not Audit.objects.exclude(verdict="pending").exists()
    assert Batch.objects.get(pk=batch.pk).status == "audited"
    assert Task.objects.filter(batch=batch, status="completed").count() == 4
    assert Membership.objects.get(project=project, user__username="bob").paused_at is None


def test_anonymous_callers_are_refused(sampled, project):
    from rest_framework.test import APIClient

    batch, _ = sampled
    response = APIClient().get(f"/api/v1/batches/{batch.pk}/quality/")
    assert response.status_code in (401, 403)


def test_unknown_objects_are_404(sampled, alice, client_for):
    client = client_for(alice)
    assert client.get("/api/v1/batches/999999/quality/").status_code == 404
    assert client.post("/api/v1/tasks/999999/audit/", {"correct": True}, format="json").status_code == 404
    assert client.get("/api/v1/projects/999999/annotators/").status_code == 404


def test_a_wrong_verdict_without_the_right_choice_is_400_and_stores_nothing(sampled, project, carol, client_for):
    _, audits = sampled
    url = f"/api/v1/tasks/{audits[0].task_id}/audit/"
    response = client_for(carol).post(url, {"correct": False}, format="json")
    assert response.status_code == 400
    assert "say which choice is right" in str(response.data)
    response = client_for(carol).post(url, {"correct": "perhaps"}, format="json")
    assert response.status_code == 400 and "correct" in response.data["fields"]
    assert Audit.objects.get(pk=audits[0].pk).verdict == "pending"


def test_a_choice_from_another_project_is_refused(sampled, project, alice, carol, client_for):
    _, audits = sampled
    other = projects.create_project(
        created_by=alice, fields={"name": "Other"},
        choices=[{"label": "X", "hotkey": "1", "domain": "A"}, {"label": "Y", "hotkey": "2", "domain": "B"}],
    )
    foreign = other.choices.first().pk
    response = client_for(carol).post(
        f"/api/v1/tasks/{audits[0].task_id}/audit/", {"correct": False, "choice": foreign}, format="json"
    )
    assert response.status_code == 400 and "not one of this project's choices" in str(response.data)
    task = Task.objects.get(pk=audits[0].task_id)
    assert task.final_choice.label == "Anime" and task.decided_by == "single"
    assert Audit.objects.get(pk=audits[0].pk).verdict == "pending"


def test_confirming_a_wrong_answer_as_itself_counts_as_correct(sampled, project, carol, client_for):
    _, audits = sampled
    anime = project.choices.get(label="Anime").pk
    response = client_for(carol).post(
        f"/api/v1/tasks/{audits[0].task_id}/audit/", {"correct": False, "choice": anime}, format="json"
    )
    assert response.status_code == 200 and response.data["verdict"] == "correct"


def test_bad_audit_draws_and_relabels_are_refused(sampled, project, alice, client_for):
    batch, _ = sampled
    client = client_for(alice)
    assert client.post(f"/api/v1/batches/{batch.pk}/audit/", {"size": 2, "width": 0.1}, format="json").status_code == 400
    assert client.post(f"/api/v1/batches/{batch.pk}/audit/", {"size": 0}, format="json").status_code == 400
    response = client.post(f"/api/v1/batches/{batch.pk}/audit/", {"size": 2}, format="json")
    assert response.status_code == 409 and "once the batch is labeled" in str(response.data)
    response = client.post(f"/api/v1/batches/{batch.pk}/relabel/", {"scope": "some"}, format="json")
    assert response.status_code == 400 and "scope" in response.data["fields"]
    response = client.post(f"/api/v1/batches/{batch.pk}/relabel/", {"scope": "all"}, format="json")
    assert response.status_code == 409 and "only a rejected batch" in str(response.data)
    assert Audit.objects.filter(batch=batch).count() == 2
    assert Batch.objects.get(pk=batch.pk).audit_round == 1


def test_an_audit_sized_from_a_width_shows_its_plan_first(project, alice, bob, client_for, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 30, kind="production", seed=5100)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=500)
    client = client_for(alice)
    plan = client.get(f"/api/v1/batches/{batch.pk}/audit/?width=0.05").data
    assert plan["requested"] > 30 and plan["size"] == 30  # capped at what the batch has
    assert plan["clean_audits_needed"] == 189 and not plan["can_accept"]
    assert "189 audits with no error" in plan["explanation"]
    assert Batch.objects.get(pk=batch.pk).status == "labeled"  # a plan draws nothing
    response = client.post(f"/api/v1/batches/{batch.pk}/audit/", {"width": 0.05}, format="json")
    assert response.status_code == 201 and len(response.data["tasks"]) == 30
    assert response.data["plan"]["strata"] == {"Anime": 30}


def test_calibration_gold_is_refused_for_unanswered_tasks_and_foreign_choices(project, alice, client_for, make_batch):
    batch = make_batch(project, 2, kind="calibration", seed=5200)
    task = batch.tasks.first()
    client = client_for(alice)
    response = client.post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": project.choices.first().pk}, format="json")
    assert response.status_code == 409 and "no answer yet" in str(response.data)
    response = client.post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": "Anime"}, format="json")
    assert response.status_code == 400
    task.refresh_from_db()
    assert not task.is_gold and task.gold_choice is None
    response = client.post(f"/api/v1/projects/{project.pk}/approve-calibration/")
    assert response.status_code == 409 and "calibration" in str(response.data)


def test_annotators_cannot_list_or_read_tasks_so_gold_and_others_answers_stay_hidden(project, alice, bob, dave, client_for, make_batch):
    """An annotator who could list tasks would see `is_gold` and how others answered."""
    batch = make_batch(project, 4, kind="calibration", seed=5200)
    photo = project.choices.get(label="Photorealistic").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=photo, duration_ms=500)
    gold = batch.tasks.first()
    quality.set_gold(task=gold, choice_id=photo)

    response = client_for(dave).get(f"/api/v1/tasks/?batch={batch.pk}")
    assert response.status_code == 200 and response.data["results"] == []
    response = client_for(dave).get(f"/api/v1/tasks/{gold.pk}/")
    assert response.status_code == 403 and "next-tasks" in str(response.data)
    # Owners (and reviewers) still read them in full.
    response = client_for(alice).get(f"/api/v1/tasks/{gold.pk}/")
    assert response.status_code == 200 and response.data["is_gold"]
    assert len(client_for(alice).get(f"/api/v1/tasks/?batch={batch.pk}").data["results"]) == 4
