"""Celery jobs for training: thin wrappers that take ids and call one service.

They go to `settings.WINNOW_TRAINING_QUEUE` (`gpu` by default; `default` on a CPU-only install).
Run the training worker with one process (`-P solo`, or `--concurrency=1` and prefetch 1): a
worker that is shutting down then hands its run back to the queue at the next iteration.
"""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings

from . import evaluations, services


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def train_run(run_id: int) -> None:
    services.execute_run(run_id=run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def augment(augmentation_id: int) -> None:
    services.execute_augmentation(augmentation_id=augmentation_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def evaluate(evaluation_id: int) -> None:
    evaluations.execute_evaluation(evaluation_id=evaluation_id)


@worker_ready.connect
def recover_runs_on_start(**kwargs: Any) -> None:
    """Runs left `running` by a worker that died are re-queued now and by a sweep every few seconds."""
    services.start_recovery_sweeper()


@worker_shutting_down.connect
def hand_back_runs_on_shutdown(**kwargs: Any) -> None:
    services.request_shutdown()
