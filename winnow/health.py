"""Probes: `/healthz` (liveness: the process answers and so does its database), `/readyz`
(readiness: the database, the broker and the media storage all work) and `/metrics` (winnow/metrics.py).

Probes are answered before any other middleware, so they work whatever Host header the prober sends:
Docker's healthcheck and an orchestrator call `http://127.0.0.1:8000/healthz`, and `ALLOWED_HOSTS`
holds the public host name only. Nothing they answer depends on the host (no URLs are built), so
the host check that guards links in pages and mails is not needed there.
"""

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import metrics, storage


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and Docker: the app answers and its database does too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker() -> None:
    from winnow.celery import app

    with app.connection_for_write(settings.CELERY_BROKER_URL) as broker:
        broker.ensure_connection(max_retries=1, timeout=3)


def check_storage() -> None:
    """The configured media storage takes a file (the folder, or the S3 bucket): uploads, thumbnails,
    exports and run files are written there."""
    storage.check_ready()


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker, "storage": check_storage}


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency works, else 503 naming each that failed and why."""
    failed = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # whatever it is, this dependency is not ready: report it, stay up
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed}, status=503)
    return JsonResponse({"status": "ok", "checked": list(CHECKS)})


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz, "/readyz": readyz, "/metrics": metrics.metrics,
}


class ProbeMiddleware:
    """First in MIDDLEWARE: a GET of a probe's path is answered here, before anything reads the Host header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
