"""Export and URL-acceptance benchmark against gunicorn + PostgreSQL.

1. A project of 100,000 tasks (each with an image and one answer) exported as NDJSON and JSON over
   HTTP: tasks/s and the serving worker's peak memory (it must stay flat: rows are streamed).
2. One JSON request with 10,000 URL tasks: accepted (every task recorded, downloads queued) tasks/s.

    .venv/bin/python benchmarks/export.py [--tasks 100000] [--urls 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import BenchServer  # noqa: E402

FILL = """
import sys
from django.contrib.auth import get_user_model
from django.db import transaction
from labeling.models import Annotation, Asset, Batch, Choice, Membership, Project, Task
n = int(sys.argv[-1])
alice = get_user_model().objects.get(username="alice")
with transaction.atomic():
    p = Project.objects.create(name="export", created_by=alice)
    Membership.objects.create(project=p, user=alice, role="owner")
    a = Choice.objects.create(project=p, label="A", hotkey="1", domain="A")
    Choice.objects.create(project=p, label="B", hotkey="2", domain="B", order=1)
    b = Batch.objects.create(project=p, name="big", kind="calibration", status="labeled")
    step = 10000
    for start in range(0, n, step):
        assets = Asset.objects.bulk_create([
            Asset(sha256=f"{i:064x}", file=f"assets/{i % 256:02x}/{i:064x}.jpg", thumbnail=f"thumbs/{i:064x}.jpg",
                  width=256, height=256, format="JPEG", byte_size=15000)
            for i in range(start, min(start + step, n))])
        tasks = Task.objects.bulk_create([
            Task(project=p, batch=b, asset=x, status="completed", final_choice=a, decided_by="single", agreement=1.0,
                 annotation_count=1, metadata={"i": k}) for k, x in enumerate(assets, start)])
        Annotation.objects.bulk_create([Annotation(task=t, annotator=alice, choice=a, duration_ms=900) for t in tasks])
print(p.pk)
"""


def timed_export(server: BenchServer, headers: dict[str, str], project: int, fmt: str, expected: int, repeats: int) -> None:
    """Export `repeats` times (a fresh worker's first export also pays for warming up) and print each and the median."""
    rates = []
    for _ in range(repeats):
        server.reset_peak()
        start = time.perf_counter()
        size = 0
        lines = 0
        with requests.get(f"{server.url}/api/v1/projects/{project}/export/?format={fmt}", headers=headers, stream=True, timeout=600) as r:
            r.raise_for_status()
            for chunk in r.iter_content(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - start
        if fmt == "ndjson":
            assert lines == expected, (lines, expected)
        rates.append(expected / elapsed)
        print(f"export {fmt:6s}: {expected:,} tasks, {size / 2**20:.0f} MB in {elapsed:.1f} s = {expected / elapsed:,.0f} tasks/s, "
              f"peak worker RSS {server.peak_rss_mb():.0f} MB")
    print(f"export {fmt:6s}: median {statistics.median(rates):,.0f} tasks/s over {repeats} exports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--export-repeats", type=int, default=3, help="exports per format to time (the median is reported)")
    parser.add_argument("--url-requests", type=int, default=5, help="URL requests to time (the median is reported)")
    args = parser.parse_args()
    with BenchServer(db="winnow_bench_export") as server:
        headers = {"Authorization": f"Token {server.create_user('alice')}"}
        start = time.perf_counter()
        project = int(server.manage("shell", "-c", FILL.replace("sys.argv[-1]", str(args.tasks))).strip().splitlines()[-1])
        server.manage("dbshell", "--", "-c", "ANALYZE")  # fresh statistics, as autovacuum would give a real install
        print(f"filled {args.tasks:,} tasks in {time.perf_counter() - start:.0f} s")
        timed_export(server, headers, project, "ndjson", args.tasks, args.export_repeats)
        timed_export(server, headers, project, "json", args.tasks, args.export_repeats)

        choices = [{"label": "A", "hotkey": "1", "domain": "A"}, {"label": "B", "hotkey": "2", "domain": "B"}]
        p = requests.post(f"{server.url}/api/v1/projects/", json={"name": "urls", "choices": choices}, headers=headers, timeout=60).json()
        # Several requests, each a new batch of fresh unique_ids in the same (growing) project: the first
        # ones may land on a gunicorn worker that has not served an ingest yet, so the median is the figure.
        rates = []
        for attempt in range(args.url_requests):
            batch = requests.post(f"{server.url}/api/v1/projects/{p['id']}/batches/", json={"name": f"u{attempt}", "kind": "calibration"},
                                  headers=headers, timeout=60).json()
            body = json.dumps({"tasks": [{"image_url": f"https://images.example.org/{attempt}/{i}.jpg", "unique_id": f"u{attempt}-{i}",
                                          "metadata": {"i": i}} for i in range(args.urls)]})
            server.reset_peak()
            start = time.perf_counter()
            r = requests.post(f"{server.url}/api/v1/batches/{batch['id']}/tasks/", data=body,
                              headers={**headers, "Content-Type": "application/json"}, timeout=600)
            elapsed = time.perf_counter() - start
            r.raise_for_status()
            assert r.json()["summary"]["created"] == args.urls, r.json()["summary"]
            rates.append(args.urls / elapsed)
            print(f"accept URLs  : request {attempt + 1}: {r.json()['summary']} in {elapsed:.3f} s = {args.urls / elapsed:,.0f} tasks/s, "
                  f"peak worker RSS {server.peak_rss_mb():.0f} MB")
        # The same request again: every unique_id exists, so every task is answered "duplicate".
        start = time.perf_counter()
        r = requests.post(f"{server.url}/api/v1/batches/{batch['id']}/tasks/", data=body,
                          headers={**headers, "Content-Type": "application/json"}, timeout=600)
        elapsed = time.perf_counter() - start
        r.raise_for_status()
        print(f"accept URLs  : median {statistics.median(rates):,.0f} tasks/s (min {min(rates):,.0f}, max {max(rates):,.0f}); "
              f"the last request re-sent: {r.json()['summary']} in {elapsed:.3f} s")
    # Drop the queued downloads nobody will run.
    import redis

    redis.Redis.from_url(server.env["CELERY_BROKER_URL"]).flushdb()


if __name__ == "__main__":
    main()
