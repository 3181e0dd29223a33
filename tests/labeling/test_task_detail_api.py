"""GET /api/v1/tasks/{id}/: everything the data manager's drawer shows."""

import pytest

from labeling import answers, leasing, quality

pytestmark = pytest.mark.django_db


def test_a_task_shows_its_answers_gold_copy_and_audits(project, alice, bob, carol, client_for, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 2, kind="production", seed=800)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=1200)
    batch.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=batch, size=1, seed=5)
    neither = project.choices.get(label="Neither").pk
    quality.submit_audit(task=audits[0].task, reviewer=carol, correct=False, choice_id=neither)
    response = client_for(alice).get(f"/api/v1/tasks/{audits[0].task_id}/")
    assert response.status_code == 200
    data = response.data
    assert data["batch_name"] == batch.name
    assert data["answer"] == "Neither" and data["decided_by"] == "audit"
    assert [(a["annotator"], a["choice_label"], a["duration_ms"]) for a in data["annotations"]] == [("bob", "Anime", 1200)]
    assert data["is_gold"] is False and data["gold_label"] is None and data["gold_source"] is None
    [audit] = data["audits"]
    assert (audit["verdict"], audit["answer_label"], audit["corrected_label"], audit["reviewer"], audit["round"]) == (
        "incorrect", "Anime", "Neither", "carol", 1)


def test_annotators_and_non_members_do_not_see_a_task(project, bob, mallory, client_for, make_batch):
    task = make_batch(project, 1).tasks.get()
    assert client_for(bob).get(f"/api/v1/tasks/{task.pk}/").status_code == 403
    assert client_for(mallory).get(f"/api/v1/tasks/{task.pk}/").status_code == 404
