"""The Celery app. Jobs live in each app's `jobs.py` so they never blur with the labeling `Task` model."""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "winnow.settings")

app = Celery("winnow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")

# The filesystem broker needs its folders before the first message.
for _key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
    _folder = app.conf.broker_transport_options.get(_key)
    if _folder:
        Path(_folder).mkdir(parents=True, exist_ok=True)
