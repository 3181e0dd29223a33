"""A split's `warnings` (POST and GET /api/v1/projects/{id}/splits/): what its counts make doubtful."""

import pytest

from labeling import answers, leasing, quality

pytestmark = pytest.mark.django_db


def accepted_batch(project, bob, carol, make_batch):
    project.gold_rate = 0
    project.max_error_rate = 0.9
    project.save()
    batch = make_batch(project, 6, kind="production", seed=1400)
    choices = [project.choices.get(label="Photorealistic").pk, project.choices.get(label="Anime").pk]
    i = 0
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=choices[i % 2], duration_ms=5)
        i += 1
    batch.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=batch, size=1, seed=1)
    quality.submit_audit(task=audits[0].task, reviewer=carol, correct=True, choice_id=None)
    return batch


def test_a_split_without_test_images_says_so(project, alice, bob, carol, client_for, make_batch):
    accepted_batch(project, bob, carol, make_batch)
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/splits/", {"test_fraction": 0, "val_fraction": 0},
                                      format="json")
    assert response.status_code == 201
    assert response.data["counts"]["A"]["test"] == response.data["counts"]["B"]["test"] == 0
    assert any("no test images of domain A" in w for w in response.data["warnings"])
    assert any("no test images of domain B" in w for w in response.data["warnings"])
    listed = client_for(alice).get(f"/api/v1/projects/{project.pk}/splits/").data[0]
    assert listed["warnings"] == response.data["warnings"]
