"""Pausing on gold accuracy: a reinstated annotator starts afresh."""

import pytest

from labeling import quality, services
from labeling.exceptions import NotAllowed
from labeling.models import Annotation, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold_project(project, alice, bob, make_batch):
    """Four calibration tasks answered by bob and confirmed Photorealistic; production batches are half gold."""
    batch = make_batch(project, 4, kind="calibration", seed=3000)
    photo = project.choices.get(label="Photorealistic").pk
    while (task := services.lease_next_task(project=project, annotator=bob)) is not None:
        services.submit_annotation(task=task, annotator=bob, choice_id=photo, duration_ms=500)
    for task in batch.tasks.all():
        quality.set_gold(task=task, choice_id=photo)
    services.approve_calibration(project=project)
    project.gold_rate, project.min_gold_answers, project.min_gold_accuracy = 1.0, 2, 0.9
    project.save()
    return project


def answer_until_paused(project, annotator, label):
    """Answer every task the annotator is given; return how many gold tasks they answered before a pause."""
    choice = project.choices.get(label=label).pk
    gold = 0
    while True:
        try:
            task = services.lease_next_task(project=project, annotator=annotator)
        except NotAllowed:
            return gold
        if task is None:
            return gold
        services.submit_annotation(task=task, annotator=annotator, choice_id=choice, duration_ms=500)
        gold += task.is_gold


def test_a_reinstated_annotator_is_judged_again_only_on_new_gold_answers(gold_project, alice, dave, make_batch):
    make_batch(gold_project, 4, kind="production", seed=3100)
    make_batch(gold_project, 4, kind="production", seed=3200)
    assert answer_until_paused(gold_project, dave, "Neither") == 2
    membership = Membership.objects.get(project=gold_project, user=dave)
    assert membership.paused_at is not None

    membership = quality.reinstate(project=gold_project, username="dave")
    assert membership.paused_at is None and membership.gold_scored_since is not None
    # Two more wrong gold answers (a fresh min_gold_answers) pause him again, not the first one.
    assert answer_until_paused(gold_project, dave, "Neither") == 2
    membership.refresh_from_db()
    assert membership.paused_at is not None
    assert "over 2 gold tasks" in membership.paused_reason
    # The record keeps every gold answer; the table shows the whole history and the fresh start.
    assert Annotation.objects.live().filter(annotator=dave, task__is_gold=True).count() == 4
    row = next(r for r in quality.annotator_table(project=gold_project) if r["username"] == "dave")
    assert row["gold_answers"] == 4 and row["paused"] and row["gold_scored_since"] is not None


def test_a_reinstated_annotator_who_now_answers_well_keeps_labeling(gold_project, dave, make_batch):
    make_batch(gold_project, 4, kind="production", seed=3300)
    make_batch(gold_project, 4, kind="production", seed=3400)
    answer_until_paused(gold_project, dave, "Neither")
    quality.reinstate(project=gold_project, username="dave")
    answer_until_paused(gold_project, dave, "Photorealistic")
    membership = Membership.objects.get(project=gold_project, user=dave)
    assert membership.paused_at is None  # 2 of 2 right since reinstatement, though 2 of 4 overall
    assert not quality.check_annotator(project=gold_project, annotator=dave)


def test_reinstating_a_stranger_is_404(gold_project, alice, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{gold_project.pk}/annotators/mallory/reinstate/")
    assert response.status_code == 404
    assert "not a member" in str(response.data)


def test_an_annotator_reads_their_own_gold_accuracy_and_pause(gold_project, dave, mallory, client_for, make_batch):
    make_batch(gold_project, 4, kind="production", seed=3500)
    url = f"/api/v1/projects/{gold_project.pk}/me/"
    response = client_for(dave).get(url)
    assert response.status_code == 200
    assert response.data["gold_accuracy"] is None and not response.data["paused"]
    assert response.data["judged"]["answers_before_judged"] == 2

    answer_until_paused(gold_project, dave, "Neither")
    response = client_for(dave).get(url)
    assert response.status_code == 200
    assert response.data["paused"] and "under the project's 90%" in response.data["paused_reason"]
    assert response.data["gold_accuracy"] == {"overall": 0.0, "recent": 0.0, "answers": 2, "correct": 0}
    assert response.data["judged"]["answers_before_judged"] == 0

    quality.reinstate(project=gold_project, username="dave")
    response = client_for(dave).get(url)
    assert not response.data["paused"]
    assert response.data["gold_accuracy"]["answers"] == 2  # the record stays
    assert response.data["judged"]["answers"] == 0 and response.data["judged"]["answers_before_judged"] == 2

    assert client_for(mallory).get(url).status_code == 403


def test_the_progress_the_annotator_page_polls_carries_my_gold_accuracy(gold_project, bob, client_for):
    response = client_for(bob).get(f"/api/v1/projects/{gold_project.pk}/progress/")
    assert response.status_code == 200
    # bob's four calibration answers became gold when the owner confirmed them, all right.
    assert response.data["gold_accuracy"] == {"overall": 1.0, "recent": 1.0, "answers": 4}
