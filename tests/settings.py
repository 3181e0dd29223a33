"""Test settings: the real services (PostgreSQL, Redis) by default, an isolated media folder.

Override DATABASE_URL / CELERY_BROKER_URL to run several suites side by side on one machine.
"""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/winnow")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
# The sign-in throttle and the progress cache live in Redis, as in production; keys carry the test
# database's name so suites run side by side on one Redis never see each other's (tests/conftest.py clears
# this suite's keys before each test).
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="winnow-test-media-"))
os.environ.setdefault("WINNOW_VAR_DIR", tempfile.mkdtemp(prefix="winnow-test-var-"))
os.environ.setdefault("WINNOW_MEDIA_CACHE", tempfile.mkdtemp(prefix="winnow-test-media-cache-"))
os.environ.setdefault("WINNOW_TRAINING_QUEUE", "gpu")
# Short heartbeats so recovery tests take seconds; no loader processes on a 2-core machine.
os.environ.setdefault("WINNOW_JOB_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("WINNOW_JOB_SWEEP_SECONDS", "2")
os.environ.setdefault("WINNOW_RUN_STALE_SECONDS", "5")
os.environ.setdefault("WINNOW_TRAINING_DATA_WORKERS", "0")

# Model assistance: embedding jobs are queued after uploads only where a test turns WINNOW_ASSIST on
# (tests/labeling/test_assist_*.py), so other worker tests do not share the worker with a CNN; small and fast.
os.environ.setdefault("WINNOW_ASSIST", "0")
# Likely label errors: checks are queued automatically only where a test turns this on.
os.environ.setdefault("WINNOW_LABEL_ERRORS", "0")
os.environ.setdefault("WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS", "0.3")
os.environ.setdefault("WINNOW_FEATURE_STEPS", "30")
os.environ.setdefault("WINNOW_FEATURE_SIZE", "48")
os.environ.setdefault("WINNOW_FEATURE_THREADS", "1")
os.environ.setdefault("WINNOW_ASSIST_DEBOUNCE_SECONDS", "0.3")

from winnow.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"winnow-test-{DATABASES['default']['NAME']}"  # noqa: F405
