"""Scale-compatible listing, the new export formats and the cost of webhooks on the answer path.

1. A project of 100,000 answered tasks exported as CSV and Label Studio JSON over HTTP: tasks/s and
   the serving worker's peak memory (flat: rows are streamed).
2. The same tasks read back through the official `scaleapi` client (`get_tasks`, 100 per page,
   `next_token` paging): tasks/s and per-page latency.
3. Answering (lease + submit, in one process) with and without a webhook subscribed to
   `task.completed`: the delivery row and the queued send are what a webhook adds to each answer.

    .venv/bin/python benchmarks/scale_exports.py [--tasks 100000] [--answers 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import BenchServer  # noqa: E402
from benchmarks.export import FILL  # noqa: E402

ANSWERS = """
import time
from django.contrib.auth import get_user_model
from django.test.utils import override_settings
from labeling import answers, leasing, webhooks
from labeling.models import Asset, Batch, Choice, Delivery, Membership, Project, Task
n = N_ANSWERS
alice = get_user_model().objects.get(username="alice")

def setup(name, offset):
    p = Project.objects.create(name=name, created_by=alice, overlap=1, gold_rate=0)
    Membership.objects.create(project=p, user=alice, role="owner")
    a = Choice.objects.create(project=p, label="A", hotkey="1", domain="A")
    Choice.objects.create(project=p, label="B", hotkey="2", domain="B", order=1)
    b = Batch.objects.create(project=p, name="b", kind="calibration", status="finalized")
    assets = Asset.objects.bulk_create([
        Asset(sha256=f"{offset + i:064x}", file=f"assets/{offset + i:064x}.jpg", thumbnail="t.jpg", width=64,
              height=64, format="JPEG", byte_size=1000) for i in range(4 * n + 10)])
    Task.objects.bulk_create([Task(project=p, batch=b, asset=x) for x in assets])
    return p, a

def answer(p, a, k):
    times = []
    for _ in range(k):
        start = time.perf_counter()
        task = leasing.lease_next_task(project=p, annotator=alice)
        answers.submit_annotation(task=task, annotator=alice, choice_id=a.pk, duration_ms=1)
        times.append(time.perf_counter() - start)
    return times

plain = setup("plain", 10**9)
hooked = setup("hooked", 2 * 10**9)
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")  # fresh statistics for the new rows, as autovacuum would give a real install
with override_settings(INGEST_ALLOWED_HOSTS=["localhost"]):
    webhooks.create_webhook(project=hooked[0], url="http://localhost:9/hook", events=["task.completed"], created_by=alice)
answer(*plain, 50), answer(*hooked, 50)  # warm up
results = {"plain": [], "hooked": []}
for _ in range(4):  # interleaved, so load on the machine falls on both alike
    results["plain"] += answer(*plain, n // 4)
    results["hooked"] += answer(*hooked, n // 4)
for name, times in results.items():
    times.sort()
    print(f"RESULT {name} {sum(times) / len(times) * 1000:.2f} {times[len(times) // 2] * 1000:.2f} "
          f"{times[int(len(times) * 0.95)] * 1000:.2f}")
print(f"RESULT deliveries {Delivery.objects.count()}")
"""


def timed_export(server: BenchServer, headers: dict[str, str], project: int, fmt: str, expected: int) -> None:
    server.reset_peak()
    start = time.perf_counter()
    size = 0
    with requests.get(f"{server.url}/api/v1/projects/{project}/export/?format={fmt}", headers=headers, stream=True,
                      timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            size += len(chunk)
    elapsed = time.perf_counter() - start
    print(f"export {fmt:11s}: {expected:,} tasks, {size / 2**20:.0f} MB in {elapsed:.1f} s = "
          f"{expected / elapsed:,.0f} tasks/s, peak worker RSS {server.peak_rss_mb():.0f} MB")


def timed_listing(server: BenchServer, token: str, expected: int) -> None:
    import scaleapi

    client = scaleapi.ScaleClient(token, api_instance_url=server.url + "/v1")
    pages: list[float] = []
    count = 0
    next_token = None
    server.reset_peak()
    start = time.perf_counter()
    while True:
        page_start = time.perf_counter()
        page = client.tasks(project="export", limit=100, **({"next_token": next_token} if next_token else {}))
        pages.append(time.perf_counter() - page_start)
        count += len(page.docs)
        next_token = page.next_token
        if not page.has_more:
            break
    elapsed = time.perf_counter() - start
    assert count == expected, (count, expected)
    pages.sort()
    print(f"scaleapi get  : {count:,} tasks in {len(pages)} pages, {elapsed:.1f} s = {count / elapsed:,.0f} tasks/s; "
          f"page p50 {statistics.median(pages) * 1000:.0f} ms, p95 {pages[int(len(pages) * 0.95)] * 1000:.0f} ms, "
          f"peak worker RSS {server.peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--answers", type=int, default=1_000)
    args = parser.parse_args()
    with BenchServer(db="winnow_bench_scale") as server:
        token = server.create_user("alice")
        headers = {"Authorization": f"Token {token}"}
        start = time.perf_counter()
        project = int(server.manage("shell", "-c", FILL.replace("sys.argv[-1]", str(args.tasks))).strip().splitlines()[-1])
        server.manage("dbshell", "--", "-c", "ANALYZE")
        print(f"filled {args.tasks:,} tasks in {time.perf_counter() - start:.0f} s")
        timed_export(server, headers, project, "csv", args.tasks)
        timed_export(server, headers, project, "labelstudio", args.tasks)
        timed_listing(server, token, args.tasks)

        out = server.manage("shell", "-c", ANSWERS.replace("N_ANSWERS", str(args.answers)))
        rows = {line.split()[1]: line.split()[2:] for line in out.splitlines() if line.startswith("RESULT")}
        for name in ("plain", "hooked"):
            mean, p50, p95 = rows[name]
            print(f"answer {name:6s}: mean {mean} ms, p50 {p50} ms, p95 {p95} ms per lease + submit")
        print(f"deliveries recorded: {rows['deliveries'][0]}")
    # Drop the queued deliveries nobody will send.
    import redis

    redis.Redis.from_url(server.env["CELERY_BROKER_URL"]).flushdb()


if __name__ == "__main__":
    main()
