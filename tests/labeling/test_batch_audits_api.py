"""GET /api/v1/projects/{id}/batch-audits/: every audited production batch's figures, for the quality page."""

import pytest

from labeling import answers, leasing, quality

pytestmark = pytest.mark.django_db


def test_every_audited_batch_comes_with_its_intervals_and_decision(project, alice, bob, carol, client_for, make_batch):
    project.gold_rate = 0
    project.max_error_rate = 0.6
    project.save()
    audited = make_batch(project, 5, kind="production", seed=1200, name="audited")
    make_batch(project, 2, kind="production", seed=1300, name="not-yet")
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=5)
    audited.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=audited, size=4, seed=2)
    for audit in audits:
        quality.submit_audit(task=audit.task, reviewer=carol, correct=True, choice_id=None)
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/batch-audits/")
    assert response.status_code == 200
    [row] = response.data
    assert (row["name"], row["audited"], row["errors"], row["decision"], row["round"]) == ("audited", 4, 0, "accepted", 1)
    assert row["wilson"][0] == 0 and 0.4 < row["wilson"][1] < 0.6
    assert row["clopper_pearson"][1] > row["wilson"][1]
    assert row["summary"] == "0 errors in 4 audited"


def test_only_owners_read_it_and_a_non_member_gets_404(project, bob, carol, mallory, client_for):
    assert client_for(carol).get(f"/api/v1/projects/{project.pk}/batch-audits/").status_code == 403
    assert client_for(bob).get(f"/api/v1/projects/{project.pk}/batch-audits/").status_code == 403
    assert client_for(mallory).get(f"/api/v1/projects/{project.pk}/batch-audits/").status_code == 404
