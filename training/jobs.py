"""Celery jobs for training: thin wrappers that take ids and call one domain function.

They go to `settings.WINNOW_TRAINING_QUEUE` (`gpu` by default; `default` on a CPU-only install).
Run the training worker with one process (`-P solo`, or `--concurrency=1` and prefetch 1): a
worker that is shutting down then hands its run back to the queue at the next iteration. Jobs
whose worker died are taken over by the sweep every worker runs (winnow/jobs.py).
"""

from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down
from django.conf import settings

from . import evaluations, runs, use


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def train_run(run_id: int) -> None:
    runs.execute_run(run_id=run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def augment(augmentation_id: int) -> None:
    use.execute_augmentation(augmentation_id=augmentation_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, queue=settings.WINNOW_TRAINING_QUEUE)
def evaluate(evaluation_id: int) -> None:
    evaluations.execute_evaluation(evaluation_id=evaluation_id)


@worker_shutting_down.connect
def hand_back_runs_on_shutdown(**kwargs: Any) -> None:
    runs.request_shutdown()
