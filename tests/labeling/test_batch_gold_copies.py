"""A batch's `gold_copies` and `audit_round` (GET /api/v1/projects/{id}/batches/), shown on the batches page."""

import pytest

from labeling import answers, leasing, projects, quality

pytestmark = pytest.mark.django_db


def test_a_production_batch_counts_its_hidden_gold_copies(project, alice, bob, client_for, make_batch):
    cal = make_batch(project, 2, kind="calibration", seed=1500)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=5)
    for task in cal.tasks.all():
        quality.set_gold(task=task, choice_id=anime)
    projects.approve_calibration(project=project)
    project.gold_rate = 0.5
    project.save()
    prod = make_batch(project, 4, kind="production", seed=1600)
    rows = {b["name"]: b for b in client_for(alice).get(f"/api/v1/projects/{project.pk}/batches/").data}
    assert rows[cal.name]["gold_copies"] == 0
    assert rows[prod.name]["gold_copies"] == prod.tasks.filter(gold_source__isnull=False).count() == 2
    assert rows[prod.name]["audit_round"] == 0
