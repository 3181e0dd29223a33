"""End to end with a real worker: planted images are ingested, the embedding job embeds them, annotators answer
(some answers planted wrong), the batch becoming labeled queues the likely-error check, a worker runs it, and the
API, the queue and the figures show its scores."""

from __future__ import annotations

import pytest
from django.test import override_settings

from labeling import answers, features, leasing
from labeling.models import AssistJobStatus, Embedding, FeatureJob, LabelCheck, LabelCheckStatus, LabelQuality

from ..conftest import wait_for
from .conftest import KIND_OF_LABEL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.worker
@override_settings(WINNOW_LABEL_ERRORS=True, WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS=0)
def test_a_labeled_batch_is_checked_by_a_worker_and_its_scores_reach_the_api(celery_worker, planted, bob, alice,
                                                                              carol, client_for):
    pile = planted(gold=24, production=30)
    project, batch = pile["project"], pile["batch"]
    features.schedule(project_id=project.pk, countdown=0)  # the embedding job, on the worker
    wait_for(lambda: Embedding.objects.filter(project=project).count() == 54
             and not FeatureJob.objects.filter(project=project).exclude(status=AssistJobStatus.DONE).exists(),
             timeout=180, what="the embedding job to embed the 54 images")
    wrong = set()
    kinds = list(KIND_OF_LABEL.values())
    by_kind = pile["by_kind"]
    for i, task in enumerate(leasing.lease_tasks(project=project, annotator=bob, count=30)):
        kind = pile["truth"][task.source_name]
        if i % 10 == 3:  # three planted wrong answers
            kind = kinds[(kinds.index(kind) + 1) % 3]
            wrong.add(task.pk)
        answers.submit_annotation(task=task, annotator=bob, choice_id=by_kind[kind].pk, duration_ms=400)
    batch.refresh_from_db()
    assert batch.status == "labeled"

    def done() -> LabelCheck | None:
        check = LabelCheck.objects.filter(project=project, batch=batch).first()
        return check if check and check.status in (LabelCheckStatus.DONE, LabelCheckStatus.FAILED) else None

    check = wait_for(done, timeout=120, what="the worker to run the check the labeled batch queued")
    assert check.status == LabelCheckStatus.DONE, check.error
    assert check.scored == 30 and check.trusted == 24 and check.heldout == 24
    detail = client_for(alice).get(f"/api/v1/label-checks/{check.pk}/").data
    assert detail["progress"] == 1.0 and detail["method"] == "confident-learning"
    rows = client_for(carol).get(f"/api/v1/projects/{project.pk}/likely-errors/", {"limit": 30}).data
    assert len(rows) == 30 and [r["score"] for r in rows] == sorted(r["score"] for r in rows)
    assert LabelQuality.objects.filter(batch=batch).count() == 30
    figures = client_for(alice).get(f"/api/v1/projects/{project.pk}/label-quality/").data
    assert figures["batches"][0]["batch"] == batch.pk and figures["batches"][0]["scored"] == 30
    # The planted wrong answers score lower than the typical answer.
    median = sorted(r["score"] for r in rows)[15]
    assert sum(1 for r in rows if r["task"] in wrong and r["score"] < median) >= 2
