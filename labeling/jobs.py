"""Celery jobs for labeling: thin wrappers that take ids and call one service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def download_images(task_ids: list[int]) -> None:
    services.download_task_images(task_ids=task_ids)
