"""Sending a paused annotator's answers back while their batch is being audited."""

import pytest

from labeling import answers, leasing, quality
from labeling.models import Audit, Batch, Task

pytestmark = pytest.mark.django_db


def test_sending_answers_back_during_an_audit_abandons_it_and_the_next_audit_is_a_new_round(
    project, alice, bob, dave, carol, client_for, make_batch
):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 4, kind="production", seed=6000)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=dave)) is not None:
        answers.submit_annotation(task=task, annotator=dave, choice_id=anime, duration_ms=500)
    batch, audits = quality.draw_audit_sample(batch=Batch.objects.get(pk=batch.pk), size=2, seed=3)
    assert batch.status == "audited"

    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/annotators/dave/relabel/")
    assert response.status_code == 200 and response.data["requeued"] == 4
    batch.refresh_from_db()
    assert batch.status == "labeling"
    assert Task.objects.filter(batch=batch, status="queued").count() == 4
    # The abandoned sample takes no more verdicts and is not offered to reviewers.
    response = client_for(carol).post(f"/api/v1/tasks/{audits[0].task_id}/audit/", {"correct": True}, format="json")
    assert response.status_code == 409 and response.data["code"] == "not_sampled"
    assert client_for(carol).get(f"/api/v1/projects/{project.pk}/audits/").data == []

    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=500)
    batch.refresh_from_db()
    assert batch.status == "labeled"
    batch, fresh = quality.draw_audit_sample(batch=batch, size=2, seed=4)
    assert batch.audit_round == 2 and {a.round for a in fresh} == {2}
    assert Audit.objects.filter(batch=batch, round=1, verdict="pending").count() == 2  # kept for the record
