"""Model assistance through the REST API: suggestion fields on tasks and in exports, the accuracy estimate,
look-alikes, suggested pages with trap gold, assisted answers in the audit figures, uncertainty order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labeling import answers, leasing, quality, reports
from labeling.models import Annotation, Embedding, LeaseOrder, Suggestion, Task, TaskStatus, Trap

from .conftest import assist_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def assisted(planted: Any) -> dict[str, Any]:
    pile = planted(gold=24, production=30, trap_rate=0.25)
    assist_now(pile["project"])
    return pile


def test_tasks_carry_their_suggestion_and_exports_mark_it_as_one(assisted, alice, client_for):
    project, batch = assisted["project"], assisted["batch"]
    suggestion = Suggestion.objects.filter(batch=batch).select_related("choice").first()
    body = client_for(alice).get(f"/api/v1/tasks/{suggestion.task_id}/").json()
    assert body["suggestion"] == {"choice": suggestion.choice_id, "label": suggestion.choice.label,
                                  "confidence": round(suggestion.confidence, 4)}
    listed = client_for(alice).get(f"/api/v1/tasks/?project={project.pk}&batch={batch.pk}").json()["results"]
    assert all(row["suggestion"] is not None for row in listed)
    gold = project.tasks.filter(is_gold=True).first()
    assert client_for(alice).get(f"/api/v1/tasks/{gold.pk}/").json()["suggestion"] is None  # answered: none

    rows = client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=json")
    data = json.loads(b"".join(rows.streaming_content))
    row = next(r for r in data if r["id"] == suggestion.task_id)
    assert row["machine_suggestion"] == {"choice": suggestion.choice.label, "confidence": round(suggestion.confidence, 4),
                                         "source": "model"}
    assert row["answer"] is None  # a suggestion is never the answer
    csv = b"".join(client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=csv").streaming_content).decode()
    assert "machine_suggestion,machine_suggestion_confidence,assisted_answers" in csv.splitlines()[0]
    ls = json.loads(b"".join(client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=labelstudio")
                             .streaming_content))
    task = next(t for t in ls if t["id"] == suggestion.task_id)
    assert task["predictions"] == [{"model_version": "winnow-suggestion", "score": round(suggestion.confidence, 4),
                                    "result": task["predictions"][0]["result"]}]
    assert task["predictions"][0]["result"][0]["value"]["choices"] == [suggestion.choice.label]


def test_the_assist_figures_are_for_owners_and_reviewers(assisted, alice, bob, carol, mallory, client_for):
    project = assisted["project"]
    url = f"/api/v1/projects/{project.pk}/assist/"
    body = client_for(alice).get(url).json()
    assert body["embeddings"]["embedded"] == body["embeddings"]["images"] == 54
    assert body["embeddings"]["job"]["status"] == "done" and body["embeddings"]["kind"] == "rotation-cnn"
    s = body["suggestions"]
    assert s["gold"] == 24 and s["heldout"] == 24 and s["suggested"] == 30
    assert s["accuracy"] == s["heldout_correct"] / 24 and s["interval"][0] <= s["accuracy"] <= s["interval"][1]
    assert client_for(carol).get(url).status_code == 200
    assert client_for(bob).get(url).status_code == 403
    assert client_for(mallory).get(url).status_code == 404
    assert client_for(carol).post(url, {"retrain": True}, format="json").status_code == 403
    response = client_for(alice).post(url, {"retrain": True, "epochs": 3}, format="json")
    assert response.status_code == 400 and "epochs" in response.json()["fields"]
    response = client_for(alice).post(url, {"retrain": True}, format="json")
    assert response.status_code == 202 and response.json()["embeddings"]["job"]["status"] == "queued"
    assert response.json()["embeddings"]["job"]["retrain"] is True


def test_similar_lists_the_nearest_images_and_refuses_without_an_embedding(assisted, alice, bob, carol, mallory,
                                                                           client_for):
    task = assisted["batch"].tasks.first()
    url = f"/api/v1/tasks/{task.pk}/similar/?k=5"
    body = client_for(alice).get(url).json()
    assert body["task"] == task.pk and len(body["similar"]) == 5
    distances = [row["distance"] for row in body["similar"]]
    assert distances == sorted(distances) and task.pk not in [row["task"] for row in body["similar"]]
    assert all(row["thumbnail_url"].startswith("http") for row in body["similar"])
    assert client_for(carol).get(url).status_code == 200
    assert client_for(bob).get(url).status_code == 403  # annotators get look-alikes as leases
    assert client_for(mallory).get(url).status_code == 404
    assert client_for(alice).get(f"/api/v1/tasks/{task.pk}/similar/?k=0").status_code == 400
    Embedding.objects.filter(asset_id=task.asset_id).delete()
    response = client_for(alice).get(url)
    assert response.status_code == 409 and response.json()["code"] == "no_embedding"
    assert "embedding job" in response.json()["detail"]


def test_a_suggested_page_shares_one_choice_most_confident_first_with_traps_mixed_in(assisted, bob, client_for):
    project = assisted["project"]
    response = client_for(bob).post(f"/api/v1/projects/{project.pk}/suggested-tasks/", {"count": 12}, format="json")
    assert response.status_code == 200
    page = response.json()
    tasks = page["tasks"]
    assert tasks and {t["suggestion"]["choice"] for t in tasks} == {page["choice"]}
    traps = Trap.objects.filter(annotator=bob)
    trap_ids = set(traps.values_list("task_id", flat=True))
    real = [t for t in tasks if t["id"] not in trap_ids]
    confidences = [t["suggestion"]["confidence"] for t in real]
    assert confidences == sorted(confidences, reverse=True)
    assert set(Suggestion.objects.filter(task_id__in=[t["id"] for t in real]).values_list("choice_id", flat=True)) == {
        page["choice"]}
    # Traps: gold copies whose right answer is not the page's choice, shown with it, leased to bob.
    assert 1 <= len(trap_ids) <= 3 and trap_ids <= {t["id"] for t in tasks}
    for trap in traps.select_related("task"):
        assert trap.task.is_gold and trap.task.gold_choice_id != page["choice"] and trap.shown_choice_id == page["choice"]
        assert trap.task.batch_id == assisted["batch"].pk
    assert "is_gold" not in tasks[0] and "gold_choice" not in tasks[0]  # nothing tells a trap apart
    # Asking again (a reload) hands back the same page, traps included: no new trap is planted.
    again = client_for(bob).post(f"/api/v1/projects/{project.pk}/suggested-tasks/", {"count": 12}, format="json").json()
    assert {t["id"] for t in again["tasks"]} == {t["id"] for t in tasks}
    assert Trap.objects.filter(annotator=bob).count() == len(trap_ids)


def test_suggested_pages_refuse_bad_requests(assisted, bob, mallory, client_for):
    project = assisted["project"]
    url = f"/api/v1/projects/{project.pk}/suggested-tasks/"
    assert client_for(bob).post(url, {"count": 0}, format="json").status_code == 400
    response = client_for(bob).post(url, {"count": 5, "colour": 1}, format="json")
    assert response.status_code == 400 and "colour" in response.json()["fields"]
    response = client_for(bob).post(url, {"choice": 999_999}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "bad_choice"
    assert client_for(mallory).post(url, {"count": 5}, format="json").status_code == 404
    response = client_for(bob).post(url, {"like": 999_999}, format="json")
    assert response.status_code == 404


def test_more_like_this_leases_the_nearest_queued_images(assisted, bob, client_for):
    project, batch = assisted["project"], assisted["batch"]
    task = batch.tasks.first()
    response = client_for(bob).post(f"/api/v1/projects/{project.pk}/suggested-tasks/", {"count": 5, "like": task.pk},
                                    format="json")
    assert response.status_code == 200
    ids = [t["id"] for t in response.json()["tasks"]]
    assert len(ids) == 5 and task.pk not in ids
    assert set(Task.objects.filter(pk__in=ids).values_list("status", flat=True)) == {TaskStatus.QUEUED}
    assert set(leasing.Lease.objects.filter(annotator=bob, task_id__in=ids).values_list("task_id", flat=True)) == set(ids)
    assert not Trap.objects.exists()


def test_accepting_traps_is_scored_as_wrong_gold_and_pauses_the_annotator(assisted, bob, alice, client_for):
    project = assisted["project"]
    project.min_gold_answers = 2
    project.min_gold_accuracy = 0.9
    project.save()
    page = client_for(bob).post(f"/api/v1/projects/{project.pk}/suggested-tasks/", {"count": 12}, format="json").json()
    # A rubber stamp: every tile answered with the page's suggestion, none looked at.
    items = [{"task": t["id"], "choice": page["choice"], "duration_ms": 40, "assisted": True} for t in page["tasks"]]
    response = client_for(bob).post(f"/api/v1/projects/{project.pk}/annotations/bulk/", {"answers": items}, format="json")
    assert response.status_code == 200
    traps = Trap.objects.filter(annotator=bob)
    assert traps.exists() and traps.filter(accepted_at__isnull=True).count() == 0
    assert Annotation.objects.filter(annotator=bob, assisted=True).count() == response.json()["summary"]["created"]
    row = next(r for r in reports.annotator_table(project=project) if r["username"] == "bob")
    assert row["traps_shown"] == row["traps_accepted"] == traps.count() and row["trap_acceptance"] == 1.0
    assert row["assisted_answers"] == response.json()["summary"]["created"] and traps.count() == 3
    bob_member = project.memberships.get(user=bob)
    assert bob_member.paused_at is not None and "gold accuracy" in bob_member.paused_reason
    table = client_for(alice).get(f"/api/v1/projects/{project.pk}/annotators/").json()
    assert next(r for r in table if r["username"] == "bob")["traps_accepted"] == traps.count()


def test_declining_a_trap_leaves_it_unaccepted(assisted, bob, client_for):
    project = assisted["project"]
    page = client_for(bob).post(f"/api/v1/projects/{project.pk}/suggested-tasks/", {"count": 12}, format="json").json()
    traps = dict(Trap.objects.filter(annotator=bob).values_list("task_id", "task__gold_choice_id"))
    items = [{"task": t["id"], "choice": traps.get(t["id"], page["choice"]), "assisted": t["id"] not in traps}
             for t in page["tasks"]]
    client_for(bob).post(f"/api/v1/projects/{project.pk}/annotations/bulk/", {"answers": items}, format="json")
    assert not Trap.objects.filter(annotator=bob, accepted_at__isnull=False).exists()
    assert not Annotation.objects.filter(annotator=bob, task_id__in=traps, assisted=True).exists()
    assert project.memberships.get(user=bob).paused_at is None


def test_a_bulk_answer_with_a_bad_assisted_flag_is_refused_alone(assisted, bob, client_for):
    project = assisted["project"]
    task = leasing.lease_next_task(project=project, annotator=bob)
    items = [{"task": task.pk, "choice": assisted["choice"]["Photo"].pk, "assisted": "yes"},
             {"task": task.pk, "choice": assisted["choice"]["Photo"].pk, "confident": True}]
    body = client_for(bob).post(f"/api/v1/projects/{project.pk}/annotations/bulk/", {"answers": items},
                                format="json").json()
    assert [r["status"] for r in body["results"]] == ["rejected", "rejected"]
    assert "assisted" in body["results"][0]["detail"] and "confident" in body["results"][1]["detail"]
    assert not Annotation.objects.filter(annotator=bob, task=task).exists()


def test_audit_figures_are_reported_for_assisted_and_unassisted_answers_apart(assisted, alice, bob, carol, client_for):
    project, batch = assisted["project"], assisted["batch"]
    photo, cartoon = assisted["choice"]["Photo"].pk, assisted["choice"]["Cartoon"].pk
    n = 0
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=photo if n % 2 else cartoon, duration_ms=50,
                                  assisted=n % 2 == 0)
        n += 1
    batch.refresh_from_db()
    quality.draw_audit_sample(batch=batch, size=30, seed=1)
    for audit in batch.audits.all():
        # Every cartoon answer (the assisted ones) is judged wrong, every photo answer right.
        wrong = audit.answer_id == cartoon
        quality.submit_audit(task=audit.task, reviewer=carol, correct=not wrong, choice_id=photo if wrong else None)
    figures = client_for(alice).get(f"/api/v1/batches/{batch.pk}/quality/").json()
    assert figures["assisted"]["audited"] == 15 and figures["assisted"]["errors"] == 15
    assert figures["unassisted"]["audited"] == 15 and figures["unassisted"]["errors"] == 0
    assert figures["assisted"]["error_rate"] == 1.0 and figures["unassisted"]["wilson"][0] == 0.0
    overview = client_for(alice).get(f"/api/v1/projects/{project.pk}/batch-audits/").json()
    assert overview[0]["assisted"]["errors"] == 15 and overview[0]["unassisted"]["audited"] == 15


def test_the_uncertainty_order_hands_out_the_least_confident_suggestion_first(assisted, alice, bob, client_for):
    project = assisted["project"]
    response = client_for(alice).patch(f"/api/v1/projects/{project.pk}/", {"lease_order": "sideways"}, format="json")
    assert response.status_code == 400 and "lease_order" in response.json()["fields"]
    response = client_for(alice).patch(f"/api/v1/projects/{project.pk}/", {"lease_order": LeaseOrder.UNCERTAINTY},
                                       format="json")
    assert response.status_code == 200 and response.json()["lease_order"] == "uncertainty"
    order = list(Suggestion.objects.filter(batch=assisted["batch"]).order_by("confidence", "task__created_at",
                                                                             "task_id").values_list("task_id", flat=True))
    first = client_for(bob).post(f"/api/v1/projects/{project.pk}/next-task/").json()
    assert first["id"] == order[0]
    page = client_for(bob).post(f"/api/v1/projects/{project.pk}/next-tasks/", {"count": 5}, format="json").json()
    assert [t["id"] for t in page["tasks"]] == order[:5]  # the held lease first, then the next least confident


def test_the_trap_rate_is_a_checked_project_setting(project, alice, client_for):
    url = f"/api/v1/projects/{project.pk}/"
    assert client_for(alice).get(url).json()["trap_rate"] == 0.1
    response = client_for(alice).patch(url, {"trap_rate": 0.9}, format="json")
    assert response.status_code == 400 and "trap_rate" in response.json()["fields"]
    assert client_for(alice).patch(url, {"trap_rate": 0.2}, format="json").json()["trap_rate"] == 0.2


def test_asking_for_embeddings_twice_queues_one_job_and_a_retrain_joins_it(assisted, alice, client_for):
    from labeling.models import FeatureJob

    project = assisted["project"]
    url = f"/api/v1/projects/{project.pk}/assist/"
    before = FeatureJob.objects.filter(project=project).count()
    first = client_for(alice).post(url, {}, format="json")
    again = client_for(alice).post(url, {"retrain": True}, format="json")  # a double click, then the other button
    assert first.status_code == again.status_code == 202
    assert first.json()["embeddings"]["job"]["id"] == again.json()["embeddings"]["job"]["id"]
    assert FeatureJob.objects.filter(project=project).count() == before + 1
    assert FeatureJob.objects.get(pk=again.json()["embeddings"]["job"]["id"]).retrain is True
