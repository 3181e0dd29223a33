"""The Celery app. Jobs live in each app's `jobs.py` so they never blur with the labeling `Task` model."""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "winnow.settings")

app = Celery("winnow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")

# The filesystem broker needs its folders before the first message.
for _key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
    _folder = app.conf.broker_transport_options.get(_key)
    if _folder:
        Path(_folder).mkdir(parents=True, exist_ok=True)


@worker_ready.connect
def start_job_sweeper(**kwargs: Any) -> None:
    """Every worker takes over stale jobs of every kind now and every WINNOW_JOB_SWEEP_SECONDS (winnow/jobs.py)."""
    from winnow import jobs  # models: import once Django's apps are ready

    jobs.start_sweeper()
