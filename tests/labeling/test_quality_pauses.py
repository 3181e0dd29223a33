"""Pausing on gold accuracy: a reinstated annotator starts afresh."""

import pytest

from labeling import answers, leasing, projects, quality, reports
from labeling.models import Annotation, Membership
from winnow.exceptions import NotAllowed

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold_project(project, alice, bob, make_batch):
    """Four calibration tasks answered by bob and confirmed Photorealistic; production batches are half gold."""
    batch = make_batch(project, 4, kind="calibration", seed=3000)
    photo = project.choices.get(label="Photorealistic").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=photo, duration_ms=500)
    for task in batch.tasks.all():
        quality.set_gold(task=task, choice_id=photo)
    projects.approve_calibration(project=project)
    project.gold_rate, project.min_gold_answers, project.min_gold_accuracy = 1.0, 2, 0.9
    project.save()
    return project


def answer_until_paused(project, annotator, label):
    """Answer every task the annotator is given; return how many gold tasks they answered before a pause."""
    choice = project.choices.get(label=label).pk
    gold = 0
    while True:
        try:
            task = leasing.lease_next_task(project=project, annotator=annotator)
        except NotAllowed:
            return gold
        if task is None:
            return gold
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choice, duration_ms=500)
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
    row = next(r for r in reports.annotator_table(project=gold_project) if r["username"] == "dave")
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


def test_an_annotator_reads_their_own_pause_and_reason(gold_project, dave, mallory, client_for, make_batch):
    make_batch(gold_project, 4, kind="production", seed=3500)
    url = f"/api/v1/projects/{gold_project.pk}/me/"
    response = client_for(dave).get(url)
    assert response.status_code == 200
    assert response.data["gold_accuracy"] is None and not response.data["paused"]

    answer_until_paused(gold_project, dave, "Neither")
    response = client_for(dave).get(url)
    assert response.status_code == 200
    assert response.data["paused"] and "under the project's 90%" in response.data["paused_reason"]
    assert response.data["gold_accuracy"] is None  # 2 gold answers: under one block, nothing shown

    quality.reinstate(project=gold_project, username="dave")
    response = client_for(dave).get(url)
    assert not response.data["paused"] and response.data["scored_since"] is not None

    assert client_for(mallory).get(url).status_code == 404  # a stranger learns nothing


def test_my_gold_accuracy_is_shown_in_whole_blocks_so_it_never_points_at_one_answer(gold_project, bob, client_for, make_batch):
    gold_project.min_gold_accuracy = 0.0  # keep bob labeling whatever he answers
    gold_project.save()
    make_batch(gold_project, 4, kind="production", seed=3600)
    make_batch(gold_project, 4, kind="production", seed=3700)
    answer_until_paused(gold_project, bob, "Neither")
    # bob: 4 right calibration answers, then 8 wrong gold copies = 12 gold answers; one block of 10 shows.
    assert Annotation.objects.live().filter(annotator=bob, task__is_gold=True).count() == 12
    expected = {"overall": 0.4, "recent": 0.4, "answers": 10, "correct": 4}
    response = client_for(bob).get(f"/api/v1/projects/{gold_project.pk}/me/")
    assert response.status_code == 200 and response.data["gold_accuracy"] == expected
    assert response.data["gold_feedback_block"] == reports.GOLD_FEEDBACK_BLOCK
    # The annotator page's progress call carries the same share.
    assert client_for(bob).get(f"/api/v1/projects/{gold_project.pk}/progress/").data["gold_accuracy"] == 0.4
    # The owner's table stays exact.
    row = next(r for r in reports.annotator_table(project=gold_project) if r["username"] == "bob")
    assert row["gold_answers"] == 12 and row["gold_correct"] == 4
