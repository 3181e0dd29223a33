"""Two reviewers finishing the last audits of a sample at the same moment still decide the batch."""

import threading

import pytest
from django.db import connection, transaction

from labeling import answers, leasing, projects, quality
from labeling.models import Audit, Batch, Task


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_finishing_the_last_two_audits_at_once_decide_the_batch(project, bob, carol, make_user, make_batch):
    make_user("erin")
    projects.add_member(project=project, username="erin", role="reviewer")
    erin = project.memberships.get(user__username="erin").user
    project.gold_rate, project.max_error_rate = 0, 0.7
    project.save()
    batch = make_batch(project, 2, kind="production", seed=4000)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=500)
    _, audits = quality.draw_audit_sample(batch=Batch.objects.get(pk=batch.pk), size=2, seed=9)
    both_checked = threading.Barrier(2, timeout=20)
    errors = []

    def review(reviewer, task_id):
        try:
            # Hold each reviewer's transaction open until both have written their verdict and looked for
            # pending audits: each sees the other's audit still pending, the interleaving that used to
            # leave the batch audited forever.
            with transaction.atomic():
                quality.submit_audit(task=Task.objects.get(pk=task_id), reviewer=reviewer, correct=True, choice_id=None)
                both_checked.wait()
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=review, args=(user, audit.task_id)) for user, audit in zip((carol, erin), audits, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not Audit.objects.filter(batch_id=batch.pk, verdict="pending").exists()
    batch.refresh_from_db()
    assert batch.status == "accepted" and batch.decided_at is not None
