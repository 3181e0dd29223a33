"""/metrics, /readyz and JSON logs, through the real endpoints."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from labeling import leasing
from labeling.models import Export
from winnow.logs import JsonFormatter

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def scrape(client: Client, **headers: str) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics_count_requests_by_route_and_status_and_time_them(alice: Any, client_for: Any, project: Any) -> None:
    api = client_for(alice)
    assert api.get(f"/api/v1/projects/{project.pk}/").status_code == 200
    assert api.get("/api/v1/projects/999999/").status_code == 404
    body = scrape(Client())
    assert 'winnow_http_requests_total{method="GET",route="api/v1/projects/(?P<pk>[^/.]+)/$",status="200"}' in body
    assert 'winnow_http_requests_total{method="GET",route="api/v1/projects/(?P<pk>[^/.]+)/$",status="404"}' in body
    assert 'winnow_http_request_duration_seconds_bucket{le="0.005",method="GET",route="api/v1/projects/(?P<pk>[^/.]+)/$"}' in body
    assert f"projects/{project.pk}/" not in body and "_created" not in body  # routes, never paths with ids


def test_metrics_report_leases_jobs_and_queues(project: Any, bob: Any, make_batch: Any) -> None:
    make_batch(project, 3)
    leasing.lease_tasks(project=project, annotator=bob, count=2)
    Export.objects.create(project=project, requested_by=project.created_by, format="csv")
    body = scrape(Client())
    assert "winnow_leases_active 2.0" in body
    assert 'winnow_jobs{kind="labeling.Export",status="queued"} 1.0' in body
    assert 'winnow_celery_queue_length{queue="default"}' in body
    assert "winnow_broker_up 1.0" in body


def test_metrics_answer_loopback_only_unless_a_token_is_set(settings: Any) -> None:
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403  # through a proxy
    settings.METRICS_TOKEN = "scrape-me"
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics").status_code == 401
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics").status_code == 401  # the token binds loopback too
    scrape(outside, HTTP_AUTHORIZATION="Bearer scrape-me", HTTP_HOST="web:8000")  # any Host, as Prometheus sends


def test_readyz_answers_ok_when_the_database_broker_and_storage_work() -> None:
    response = Client(HTTP_HOST="127.0.0.1").get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checked": ["database", "broker", "storage"]}


def test_readyz_names_what_failed(settings: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    settings.MEDIA_ROOT = tmp_path / "a-file" / "media"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and sorted(body["failed"]) == ["broker", "storage"]
    assert Client().get("/healthz").status_code == 200  # liveness does not depend on them


def test_json_logs_carry_the_request_id(alice: Any, client_for: Any, caplog: Any) -> None:
    formatter = JsonFormatter()
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(record)))

    handler = Keep()
    logging.getLogger("django.request").addHandler(handler)
    try:
        response = client_for(alice).get("/api/v1/projects/999999/", HTTP_X_REQUEST_ID="req-42")
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    assert response.status_code == 404 and response["X-Request-ID"] == "req-42"
    assert lines and lines[0]["request_id"] == "req-42"
    assert set(lines[0]) == {"time", "level", "logger", "message", "request_id"}
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "django.request"
    assert Client().get("/healthz")["Content-Type"] == "application/json"


def test_a_request_id_that_does_not_look_like_one_is_replaced() -> None:
    response = Client().get("/login/", HTTP_X_REQUEST_ID="evil\nline")
    assert response["X-Request-ID"] != "evil\nline" and len(response["X-Request-ID"]) == 32


def test_log_format_json_writes_one_object_per_line() -> None:
    code = ("import django, logging; django.setup(); logging.getLogger('winnow.check').warning('hello %s', 'there')")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "winnow.settings", "LOG_FORMAT": "json"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello there" and line["level"] == "WARNING" and line["logger"] == "winnow.check"
    assert "request_id" not in line  # outside a request
    bad = subprocess.run([sys.executable, "-c", "import winnow.settings"], cwd=REPO, env={**env, "LOG_FORMAT": "xml"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "LOG_FORMAT must be text or json" in bad.stderr
