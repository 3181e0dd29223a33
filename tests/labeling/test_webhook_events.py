"""The workflow events other modules send: batch audited, split approved, run finished."""

import pytest

from labeling import answers, leasing, quality
from labeling.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

ALL_EVENTS = ["task.completed", "batch.labeled", "batch.audited", "split.approved", "run.finished"]


@pytest.fixture
def hook(project, alice):
    return Webhook.objects.create(project=project, url="https://hooks.example.org/winnow", events=ALL_EVENTS,
                                  created_by=alice)


def answer_all(project, user, label):
    choice = project.choices.get(label=label).pk
    while (task := leasing.lease_next_task(project=project, annotator=user)) is not None:
        answers.submit_annotation(task=task, annotator=user, choice_id=choice, duration_ms=10)


def test_an_audit_decision_sends_batch_audited_with_the_figures(hook, project, bob, carol, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 2, kind="production", seed=4000)
    answer_all(project, bob, "Anime")
    batch.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=batch, size=2, seed=1)
    for audit in audits:
        quality.submit_audit(task=audit.task, reviewer=carol, correct=True, choice_id=None)
    sent = Delivery.objects.get(event="batch.audited")
    assert sent.webhook == hook and sent.url == hook.url
    assert sent.payload["data"]["decision"] == "rejected"  # 2 clean audits cannot prove under 2%
    assert sent.payload["data"]["quality"]["audited"] == 2
