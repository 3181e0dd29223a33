"""winnow.jobs: the BackgroundJob base (claim, beat, fail, stale), and the sweep every worker runs on a timer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from labeling.models import Delivery, DeliveryStatus, Export, ExportStatus, Project, Split
from tests.conftest import wait_for
from tests.labeling.test_webhooks import receiver  # noqa: F401 - fixture
from tests.training.conftest import TINY_CONFIG, accepted_batch, approved_split, trained_run  # noqa: F401 - fixtures
from training import runs
from training.models import Augmentation, Evaluation, Run, RunStatus
from winnow import jobs
from winnow.exceptions import InvalidInput

LONG_AGO = timedelta(hours=1)


def export(project: Project, owner: Any, **fields: Any) -> Export:
    return Export.objects.create(project=project, format="ndjson", requested_by=owner, **fields)


@pytest.mark.django_db
def test_a_job_is_claimed_once(project: Project, alice: Any) -> None:
    row = export(project, alice)
    assert Export.objects.claim(row.pk, rows_done=0)
    assert not Export.objects.claim(row.pk)  # a redelivered message: the job is running and beating
    row.refresh_from_db()
    assert row.status == ExportStatus.RUNNING and row.started_at is not None and row.heartbeat_at is not None


@pytest.mark.django_db
def test_a_stale_running_job_is_taken_over_and_keeps_its_first_start(project: Project, alice: Any) -> None:
    first_start = timezone.now() - LONG_AGO
    row = export(project, alice, status=ExportStatus.RUNNING, started_at=first_start,
                 heartbeat_at=timezone.now() - LONG_AGO)
    assert list(Export.objects.stale()) == [row]
    assert Export.objects.claim(row.pk)
    row.refresh_from_db()
    assert row.started_at == first_start and row.heartbeat_at > first_start
    assert not Export.objects.stale().exists()


@pytest.mark.django_db
def test_a_finished_job_is_never_claimed_again(project: Project, alice: Any) -> None:
    row = export(project, alice, status=ExportStatus.DONE, heartbeat_at=timezone.now() - LONG_AGO)
    assert not Export.objects.claim(row.pk)
    assert Export.objects.get(pk=row.pk).status == ExportStatus.DONE


@pytest.mark.django_db
def test_fail_records_the_error_once_and_only_on_a_running_job(project: Project, alice: Any) -> None:
    row = export(project, alice)
    assert not Export.objects.fail(row.pk, "not running yet")
    Export.objects.claim(row.pk)
    assert Export.objects.fail(row.pk, RuntimeError("disk full"))
    assert not Export.objects.fail(row.pk, RuntimeError("again"))
    row.refresh_from_db()
    assert (row.status, row.error) == (ExportStatus.FAILED, "RuntimeError: disk full") and row.finished_at


@pytest.mark.django_db
def test_requeue_stale_puts_each_stale_job_back_once(project: Project, alice: Any) -> None:
    stale = export(project, alice, status=ExportStatus.RUNNING, heartbeat_at=timezone.now() - LONG_AGO)
    export(project, alice, status=ExportStatus.RUNNING, heartbeat_at=timezone.now())
    assert Export.objects.requeue_stale() == [stale.pk]
    assert Export.objects.requeue_stale() == []
    assert Export.objects.get(pk=stale.pk).status == ExportStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_run_claimed_beats_meanwhile_and_records_a_failure(project: Project, alice: Any) -> None:
    row = export(project, alice)
    Export.objects.claim(row.pk)
    # An old heartbeat, but not a stale one: a live worker's periodic sweep must not take this row over.
    before = timezone.now() - timedelta(seconds=3)
    Export.objects.filter(pk=row.pk).update(heartbeat_at=before)
    beat = jobs.JobBeat(Export, row.pk, interval=0.1)

    def work() -> None:
        wait_for(lambda: Export.objects.get(pk=row.pk).heartbeat_at > before + timedelta(seconds=2),
                 timeout=10, what="a heartbeat")
        raise InvalidInput("the split of this export was deleted; export another split")

    failed = []
    with pytest.raises(InvalidInput):
        jobs.run_claimed(beat, work, on_failed=lambda: failed.append(row.pk))
    row.refresh_from_db()
    # A domain refusal is recorded as its message: it says what to do.
    assert (row.status, row.error) == (ExportStatus.FAILED, "the split of this export was deleted; export another split")
    assert failed == [row.pk] and not beat.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_beat_that_finds_its_job_gone_says_so(project: Project, alice: Any) -> None:
    row = export(project, alice)
    Export.objects.claim(row.pk)
    with jobs.JobBeat(Export, row.pk, interval=0.1) as beat:
        Export.objects.filter(pk=row.pk).update(status=ExportStatus.QUEUED)  # requeued by a sweep
        assert beat.lost.wait(5)


# --- the periodic sweep, through a real worker --------------------------------------------


@pytest.mark.worker
def test_every_worker_takes_over_stale_jobs_of_every_kind_without_a_restart(
    celery_worker: Any, trained_run: Run, approved_split: Split, project: Project, alice: Any,  # noqa: F811
    receiver: Any,  # noqa: F811 - fixtures imported above
) -> None:
    """The state five killed workers leave: each job running, its last beat an hour old. The live
    worker started before any of them, so only its periodic sweep (WINNOW_JOB_SWEEP_SECONDS) finds them."""
    dead = {"status": "running", "heartbeat_at": timezone.now() - LONG_AGO}
    checkpoint = runs.latest_checkpoint(trained_run)
    run = Run.objects.create(project=project, split=approved_split, requested_by=alice, attempts=1,
                             config=runs.resolve_config(TINY_CONFIG), worker_token="dead", **dead)
    evaluation = Evaluation.objects.create(run=trained_run, checkpoint=checkpoint, step=checkpoint.step,
                                           config={"metrics": ["classifier"], "classifier": {}}, requested_by=alice,
                                           **dead)
    augmentation = Augmentation.objects.create(run=trained_run, checkpoint=checkpoint, direction="AB", count=1,
                                               requested_by=alice, **dead)
    stale_export = export(project, alice, **dead)
    delivery = Delivery.objects.create(project=project, event="run.finished", url=f"{receiver.url}/hook",
                                       payload={"n": 1}, attempts=1, status=DeliveryStatus.SENDING,
                                       heartbeat_at=dead["heartbeat_at"])

    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED, timeout=180, what="the run taken over")
    wait_for(lambda: Evaluation.objects.get(pk=evaluation.pk).status == "succeeded", timeout=60, what="the evaluation")
    wait_for(lambda: Augmentation.objects.get(pk=augmentation.pk).status == "succeeded", timeout=60,
             what="the augmentation")
    wait_for(lambda: Export.objects.get(pk=stale_export.pk).status == ExportStatus.DONE, timeout=60, what="the export")
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED, timeout=60,
             what="the delivery")
    run.refresh_from_db()
    assert run.attempts == 2 and run.history[-1]["from_step"] == 0
    assert Delivery.objects.get(pk=delivery.pk).attempts == 2  # the dead attempt counts; the next one was sent
    assert [r["path"] for r in receiver.posts()] == ["/hook"]
