"""Celery jobs for labeling: thin wrappers that take ids and call one service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def download_images(task_ids: list[int]) -> None:
    services.download_task_images(task_ids=task_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def queue_downloads(task_ids: list[int]) -> None:
    """Split a large URL upload into download jobs, so many workers can share it."""
    for start in range(0, len(task_ids), services.URL_JOB_CHUNK):
        download_images.delay(task_ids[start : start + services.URL_JOB_CHUNK])
