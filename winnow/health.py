"""Probes: `/healthz` (liveness: the process answers and so does its database).

Probes are answered before any other middleware, so they work whatever Host header the prober sends:
Docker's healthcheck and an orchestrator call `http://127.0.0.1:8000/healthz`, and `ALLOWED_HOSTS`
holds the public host name only. Nothing they answer depends on the host (no URLs are built), so
the host check that guards links in pages and mails is not needed there.
"""

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and Docker: the app answers and its database does too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz}


class ProbeMiddleware:
    """First in MIDDLEWARE: a GET of a probe's path is answered here, before anything reads the Host header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
