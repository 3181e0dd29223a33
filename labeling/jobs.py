"""Celery jobs for labeling: thin wrappers that take ids and call one domain function.

Exports and deliveries whose worker died are taken over by the sweep every worker runs (winnow/jobs.py).
"""

from celery import shared_task

from . import exports, features, ingest, label_errors, suggestions, webhooks


@shared_task(acks_late=True, reject_on_worker_lost=True)
def download_images(task_ids: list[int]) -> None:
    ingest.download_task_images(task_ids=task_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def queue_downloads(task_ids: list[int]) -> None:
    """Split a large URL upload into download jobs, so many workers can share it."""
    for start in range(0, len(task_ids), ingest.URL_JOB_CHUNK):
        download_images.delay(task_ids[start : start + ingest.URL_JOB_CHUNK])


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int, attempt: int) -> None:
    """One attempt of a webhook or callback delivery; a failure schedules the next attempt itself."""
    webhooks.deliver(delivery_id=delivery_id, attempt=attempt)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_export(export_id: int) -> None:
    try:
        exports.run_export(export_id=export_id)
    finally:
        exports.prune_exports()  # old exports' files go while new ones are written: no scheduler needed


@shared_task(acks_late=True, reject_on_worker_lost=True)
def compute_embeddings(job_id: int) -> None:
    """Train or load the project's feature model and embed its images, then refit its suggestions."""
    project_id = features.run_feature_job(job_id=job_id)
    if project_id is not None:
        suggestions.schedule_refit(project_id=project_id, countdown=0)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def refit_suggestions(fit_id: int) -> None:
    suggestions.run_refit(fit_id=fit_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def check_labels(check_id: int) -> None:
    """Score the answers of a project or batch with confident learning (the likely-errors queue's order)."""
    label_errors.run_check(check_id=check_id)
