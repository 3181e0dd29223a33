"""Runs through a real Celery worker: a whole run, cancel and resume, and a worker killed mid-run."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from PIL import Image

from labeling.models import Split
from tests.conftest import wait_for
from training.cyclegan.infer import load_generator
from training.cyclegan.train import LOSS_NAMES
from training.models import FINISHED_RUN_STATUSES, Checkpoint, MetricPoint, Run, RunStatus, Sample

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.worker


def start(client: Any, split: Split, **config: Any) -> int:
    response = client.post("/api/v1/runs/", {"split": split.pk, "config": {**TINY_CONFIG, **config}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def finished(run_id: int, timeout: float = 180) -> Run:
    return wait_for(lambda: Run.objects.filter(pk=run_id, status__in=FINISHED_RUN_STATUSES).first(),
                    timeout=timeout, what=f"run {run_id} to finish")


def test_a_run_trains_on_the_worker_and_records_metrics_samples_and_checkpoints(
    celery_worker: Any, approved_split: Split, alice: Any, bob: Any, client_for: Callable, tmp_path: Any
) -> None:
    client = client_for(alice)
    run_id = start(client, approved_split)
    run = finished(run_id)
    # max(4 A, 5 B) images at batch 1: 5 steps an epoch, 1 constant + 1 decaying epoch.
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.step, run.total_steps, run.stop_reason, run.attempts) == (10, 10, "completed", 1)
    assert run.history[0]["from_step"] == 0 and run.started_at and run.finished_at and run.images_per_s > 0

    points = list(MetricPoint.objects.filter(run=run))
    assert [p.step for p in points] == list(range(1, 11))
    assert all(math.isfinite(p.losses[name]) for p in points for name in LOSS_NAMES)
    assert points[0].lr == pytest.approx(2e-4) and points[-1].lr < points[5].lr
    assert list(Sample.objects.filter(run=run).values_list("step", flat=True)) == [2, 4, 6, 8, 10]
    kept = Checkpoint.objects.filter(run=run, deleted_at__isnull=True).values_list("step", flat=True)
    assert list(kept) == [6, 8, 10]  # keep_checkpoints 3: older files rotated out and marked so
    assert Checkpoint.objects.filter(run=run, deleted_at__isnull=False).count() == 2

    detail = client_for(bob).get(f"/api/v1/runs/{run_id}/").json()  # members read
    assert detail["progress"] == 1.0 and [c["step"] for c in detail["checkpoints"]] == [2, 4, 6, 8, 10]
    grid = client_for(bob).get(detail["samples"][0]["image_url"])
    assert grid.status_code == 200 and grid["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(b"".join(grid.streaming_content))).size == (6 * 32, 4 * 32)
    assert client_for(bob).get(f"/api/v1/runs/{run_id}/metrics/?after=8").json()[0]["step"] == 9

    weights = client.get(f"/api/v1/runs/{run_id}/weights/")
    assert weights.status_code == 200
    path = tmp_path / "generators.pt"
    path.write_bytes(b"".join(weights.streaming_content))
    generator = load_generator(path, "AB")
    assert generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert client_for(bob).get(f"/api/v1/runs/{run_id}/weights/").status_code == 403  # owners download weights


def test_cancel_stops_a_running_run_and_resume_continues_where_it_stopped(
    celery_worker: Any, approved_split: Split, alice: Any, client_for: Callable
) -> None:
    client = client_for(alice)
    run_id = start(client, approved_split, epochs=300, decay_epochs=300, checkpoint_every=10_000, sample_every=10_000,
                   log_every=2)
    wait_for(lambda: MetricPoint.objects.filter(run_id=run_id).exists(), timeout=120, what="the first metrics")
    response = client.post(f"/api/v1/runs/{run_id}/cancel/")
    assert response.status_code == 200
    run = finished(run_id, timeout=60)
    assert (run.status, run.stop_reason) == (RunStatus.CANCELLED, "cancelled")
    assert 0 < run.step < run.total_steps
    assert Checkpoint.objects.filter(run=run, step=run.step).exists()  # saved on the way out

    response = client.post(f"/api/v1/runs/{run_id}/resume/")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    wait_for(lambda: MetricPoint.objects.filter(run_id=run_id, step__gt=run.step).exists(), timeout=120,
             what="metrics after the resume")
    resumed = Run.objects.get(pk=run_id)
    assert resumed.attempts == 2 and resumed.history[-1]["from_step"] == run.step  # continued, not restarted
    client.post(f"/api/v1/runs/{run_id}/cancel/")
    assert finished(run_id, timeout=60).status == RunStatus.CANCELLED


def test_a_run_whose_worker_is_killed_resumes_from_its_checkpoint_on_another_worker(
    start_worker: Callable[..., Any], transactional_db: Any, settings: Any, approved_split: Split, alice: Any,
    client_for: Callable,
) -> None:
    # Workers of their own queue, so the test decides which worker holds the run.
    queue = "gpu-resume-test"
    settings.WINNOW_TRAINING_QUEUE = queue
    first = start_worker(queues=queue, WINNOW_TRAINING_QUEUE=queue)
    # 160 steps: long enough to be killed mid-run, short enough to finish in time on a loaded 2-core machine.
    run_id = start(client_for(alice), approved_split, epochs=16, decay_epochs=16, checkpoint_every=4, log_every=2,
                   sample_every=10_000)
    wait_for(lambda: Checkpoint.objects.filter(run_id=run_id).exists(), timeout=120, what="the first checkpoint")
    first.kill()  # SIGKILL: no chance to checkpoint, hand back or say goodbye

    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.RUNNING and run.step < run.total_steps
    saved = Checkpoint.objects.filter(run=run, deleted_at__isnull=True).order_by("-step").first()
    assert saved is not None and saved.step > 0

    second = start_worker(queues=queue, WINNOW_TRAINING_QUEUE=queue)
    run = finished(run_id, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2 and run.history[1]["from_step"] == saved.step  # resumed, not restarted
    assert run.step == run.total_steps == 160
    # Metrics a dead execution logged past its checkpoint were redone: one point per step, in order.
    assert list(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == list(range(2, 161, 2))
    second.stop()


def test_a_worker_asked_to_shut_down_checkpoints_and_hands_its_run_back(
    start_worker: Callable[..., Any], transactional_db: Any, settings: Any, approved_split: Split, alice: Any,
    client_for: Callable,
) -> None:
    queue = "gpu-shutdown-test"
    settings.WINNOW_TRAINING_QUEUE = queue
    worker = start_worker(queues=queue, WINNOW_TRAINING_QUEUE=queue)
    run_id = start(client_for(alice), approved_split, epochs=300, decay_epochs=300, checkpoint_every=10_000,
                   sample_every=10_000, log_every=2)
    wait_for(lambda: MetricPoint.objects.filter(run_id=run_id).exists(), timeout=120, what="the first metrics")
    worker.stop()  # SIGTERM: a warm shutdown, as a deploy or `docker stop` does
    assert worker.proc.returncode is not None

    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.QUEUED and run.worker_token == ""  # back in the queue for the next worker
    assert 0 < run.step < run.total_steps
    assert Checkpoint.objects.filter(run=run, step=run.step).exists()
