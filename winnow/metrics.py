"""Prometheus metrics at `/metrics`: requests by route and status with their latency, and, read at
scrape time, the state behind them (jobs by kind and status, job durations, queue depths, what the
apps register, such as current leases).

Request counts live in each web process. Under gunicorn with several processes, set
`PROMETHEUS_MULTIPROC_DIR` to an empty folder (docker/gunicorn.conf.py clears a dead worker's files)
so a scrape sums every process. The state is read from the database and the broker, so any process
answers it whole. Who may scrape: a bearer `METRICS_TOKEN` when set, else clients on the loopback
address that came through no proxy.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
disable_created_metrics()  # a `_created` series per label set doubles the output for nothing Prometheus uses

REQUESTS = Counter("winnow_http_requests", "HTTP requests answered, by route, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("winnow_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                    ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))

# name -> (help, function returning the value): gauges an app registers in its AppConfig.ready.
_gauges: dict[str, tuple[str, Callable[[], float]]] = {}


def register_gauge(name: str, documentation: str, value: Callable[[], float]) -> None:
    """Have every scrape report `value()` as the gauge `name` (apps register theirs in AppConfig.ready)."""
    _gauges[name] = (documentation, value)


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (`api/v1/projects/(?P<pk>[^/.]+)/$` for a router's), never the path:
    ids would make a series per object."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


class MetricsMiddleware:
    """Counts and times every request that reaches the URL tree."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        LATENCY.labels(route, request.method).observe(time.perf_counter() - start)
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        return response


class StateCollector:
    """What is true now, read at each scrape: one grouped query per job kind, one per gauge, one
    round trip to the broker per queue."""

    def describe(self) -> list[Metric]:
        return []  # registering must not query the database (at import time)

    def collect(self) -> Iterable[Metric]:
        yield from self._jobs()
        yield from self._queues()
        for name, (documentation, value) in _gauges.items():
            gauge = GaugeMetricFamily(name, documentation)
            gauge.add_metric([], value())
            yield gauge

    def _jobs(self) -> Iterable[Metric]:
        from winnow import jobs

        counts = GaugeMetricFamily("winnow_jobs", "Background jobs by kind and status", labels=["kind", "status"])
        finished = GaugeMetricFamily("winnow_jobs_finished_last_day",
                                     "Background jobs finished in the last 24 hours, by kind and status",
                                     labels=["kind", "status"])
        mean = GaugeMetricFamily("winnow_job_duration_seconds_mean_last_day",
                                 "Mean time from start to finish of the jobs finished in the last 24 hours",
                                 labels=["kind", "status"])
        longest = GaugeMetricFamily("winnow_job_duration_seconds_max_last_day",
                                    "Longest time from start to finish of the jobs finished in the last 24 hours",
                                    labels=["kind", "status"])
        since = timezone.now() - timedelta(days=1)
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        for model in jobs.registered_models():
            kind = model._meta.label
            for row in model.objects.values("status").annotate(n=Count("pk")).order_by():
                counts.add_metric([kind, row["status"]], row["n"])
            done = (model.objects.filter(finished_at__gte=since, started_at__isnull=False).values("status")
                    .annotate(n=Count("pk"), mean=Avg(took), longest=Max(took)).order_by())
            for row in done:
                finished.add_metric([kind, row["status"]], row["n"])
                mean.add_metric([kind, row["status"]], row["mean"].total_seconds())
                longest.add_metric([kind, row["status"]], row["longest"].total_seconds())
        yield from (counts, finished, mean, longest)

    def _queues(self) -> Iterable[Metric]:
        from winnow.celery import app

        depth = GaugeMetricFamily("winnow_celery_queue_length", "Messages waiting in each Celery queue",
                                  labels=["queue"])
        up = GaugeMetricFamily("winnow_broker_up", "1 when the broker answered this scrape")
        connection = app.connection_for_read()
        try:
            with connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                channel = connection.default_channel
                for queue in queue_names():
                    try:
                        depth.add_metric([queue], channel.queue_declare(queue, passive=True).message_count)
                    except connection.channel_errors:  # never declared: nothing waits in it
                        channel = connection.channel()
                        depth.add_metric([queue], 0)
            up.add_metric([], 1)
        except (OSError, *connection.connection_errors) as exc:  # the scrape says the broker is down
            log.warning("metrics: the broker did not answer: %s", exc)
            up.add_metric([], 0)
        yield from (depth, up)


def queue_names() -> list[str]:
    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, settings.WINNOW_TRAINING_QUEUE, settings.WEBHOOK_QUEUE})


_state = StateCollector()
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    REGISTRY.register(_state)


def registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    from prometheus_client import multiprocess

    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape)
    scrape.register(_state)
    return scrape


def may_scrape(request: HttpRequest) -> bool:
    """With METRICS_TOKEN, `Authorization: Bearer <token>`; without, a loopback client through no proxy."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return sent.startswith("Bearer ") and hmac.compare_digest(sent[len("Bearer "):].encode(), token.encode())
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format, for the scrapers `may_scrape` lets in."""
    if not may_scrape(request):
        status = 401 if settings.METRICS_TOKEN else 403
        message = ("send Authorization: Bearer <METRICS_TOKEN>\n" if settings.METRICS_TOKEN else
                   "metrics answer the loopback address only; set METRICS_TOKEN to scrape from elsewhere\n")
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
