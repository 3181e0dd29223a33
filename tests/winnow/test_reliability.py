"""What keeps the deployment up: threaded web workers, probes that answer any Host, and a broker
visibility timeout longer than the longest countdown the code schedules."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from winnow.celery import app

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def settings_with(names: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Import winnow.settings in a fresh interpreter with `env` and print `names` as JSON."""
    clean = {k: v for k, v in os.environ.items() if k not in env}
    code = f"import json, winnow.settings as s; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True,
                          text=True)


def test_healthz_answers_a_host_that_is_not_allowed_while_other_paths_refuse_it(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["winnow.example.org"]
    client = Client(HTTP_HOST="127.0.0.1:8000")
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.get("/login/").status_code == 400
    assert client.get("/api/v1/projects/").status_code == 400
    assert Client(HTTP_HOST="winnow.example.org").get("/login/").status_code == 200


def test_the_web_image_runs_threaded_gunicorn_workers() -> None:
    config = runpy.run_path(str(REPO / "docker" / "gunicorn.conf.py"))
    assert config["worker_class"] == "gthread" and config["threads"] > 1
    assert "docker/gunicorn.conf.py" in (REPO / "docker" / "Dockerfile").read_text()


def test_the_visibility_timeout_outlasts_the_longest_webhook_retry() -> None:
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout > settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS + settings.VISIBILITY_MARGIN_SECONDS
    assert app.conf.broker_transport_options["visibility_timeout"] == timeout


def test_a_longer_retry_delay_raises_the_visibility_timeout_with_it() -> None:
    out = settings_with(["CELERY_BROKER_TRANSPORT_OPTIONS"], WEBHOOK_RETRY_MAX_DELAY_SECONDS="86400",
                        CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 2 * 86400


def test_a_visibility_timeout_shorter_than_the_retries_fails_at_start_up() -> None:
    out = settings_with(["BROKER_VISIBILITY_TIMEOUT_SECONDS"], BROKER_VISIBILITY_TIMEOUT_SECONDS="3600",
                        CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    assert out.returncode != 0
    assert "BROKER_VISIBILITY_TIMEOUT_SECONDS (3600) must be more than WEBHOOK_RETRY_MAX_DELAY_SECONDS" in out.stderr
