"""Split approval and finished runs send their webhooks."""

import pytest

from labeling import splits
from labeling.models import Delivery, Webhook
from training import runs as training
from training.models import Run, RunStatus

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(project, alice):
    return Webhook.objects.create(project=project, url="https://hooks.example.org/winnow",
                                  events=["split.approved", "run.finished"], created_by=alice)


def test_approving_a_split_sends_split_approved_once(hook, project, alice, accepted_batch):
    accepted_batch(project, "AAAABBBB")
    split = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0)
    assert not Delivery.objects.exists()
    splits.approve_split(split=split, approved_by=alice)
    sent = Delivery.objects.get(event="split.approved")
    assert sent.payload["data"]["split"]["id"] == split.pk
    assert sent.payload["data"]["split"]["manifest_sha256"] == split.manifest_sha256
    with pytest.raises(Exception, match="already approved"):
        splits.approve_split(split=split, approved_by=alice)
    assert Delivery.objects.filter(event="split.approved").count() == 1


def test_cancelling_a_queued_run_sends_run_finished(hook, approved_split, alice):
    run = Run.objects.create(project=approved_split.project, split=approved_split, requested_by=alice,
                             config=training.resolve_config(TINY_CONFIG))
    Delivery.objects.all().delete()  # the split approval's own event
    training.cancel_run(run=run)
    sent = Delivery.objects.get(event="run.finished")
    assert sent.payload["data"]["run"] == {**sent.payload["data"]["run"], "id": run.pk, "status": RunStatus.CANCELLED}


@pytest.mark.django_db(transaction=True)
def test_a_run_trained_to_the_end_sends_run_finished(hook, approved_split, alice):
    run = Run.objects.create(project=approved_split.project, split=approved_split, requested_by=alice,
                             config=training.resolve_config(TINY_CONFIG))
    training.execute_run(run_id=run.pk)
    sent = Delivery.objects.get(event="run.finished")
    assert sent.payload["data"]["run"]["status"] == RunStatus.SUCCEEDED
    assert sent.payload["data"]["run"]["step"] == 10
    run.refresh_from_db()
    assert run.elapsed_s > 0  # the wall time of the execution is recorded
