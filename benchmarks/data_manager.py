"""Data-manager listing benchmark against gunicorn + PostgreSQL: pages of GET /api/v1/tasks/ on a
project of 100,000 tasks, unfiltered and with each of the data manager's filters.

Each listing is timed as the page asks for it (page_size=200, cursor pagination): the first page,
a page deep in the project (reached by following `next`), and the first page of each filter.

    .venv/bin/python benchmarks/data_manager.py [--tasks 100000] [--repeats 5]
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

# Every task has an image and two answers; one in 5 disagrees (agreement 0.5), one in 50 is a gold copy
# of another task's image, one in 200 failed to download, one in 100 was audited.
FILL = """
from django.contrib.auth import get_user_model
from django.db import transaction
from labeling.models import Annotation, Asset, Audit, Batch, Choice, Membership, Project, Task
n = N
User = get_user_model()
alice = User.objects.get(username="alice")
bob = User.objects.create_user("bob", password="x" * 12)
with transaction.atomic():
    p = Project.objects.create(name="data manager", created_by=alice, overlap=2)
    Membership.objects.create(project=p, user=alice, role="owner")
    Membership.objects.create(project=p, user=bob, role="annotator")
    a = Choice.objects.create(project=p, label="A", hotkey="1", domain="A")
    b = Choice.objects.create(project=p, label="B", hotkey="2", domain="B", order=1)
    batch = Batch.objects.create(project=p, name="big", kind="production", status="audited", audit_round=1)
    step = 10000
    for start in range(0, n, step):
        idx = range(start, min(start + step, n))
        assets = Asset.objects.bulk_create([
            Asset(sha256=f"{i:064x}", file=f"assets/{i % 256:02x}/{i:064x}.jpg", thumbnail=f"thumbs/{i:064x}.jpg",
                  width=256, height=256, format="JPEG", byte_size=15000) for i in idx if i % 50])
        by_i = {int(x.sha256, 16): x for x in assets}
        tasks = Task.objects.bulk_create([
            Task(project=p, batch=batch, asset=by_i.get(i) or by_i.get(i + 1) or assets[0],
                 status="failed" if i % 200 == 7 else "completed",
                 error="HTTP 404 from images.example.org" if i % 200 == 7 else "",
                 final_choice=a if i % 2 else b, decided_by="consensus", agreement=0.5 if i % 5 == 0 else 1.0,
                 annotation_count=2, is_gold=i % 50 == 0, metadata={"i": i}) for i in idx])
        Annotation.objects.bulk_create([Annotation(task=t, annotator=u, choice=t.final_choice, duration_ms=900)
                                        for t in tasks for u in (alice, bob)])
        Audit.objects.bulk_create([Audit(batch=batch, task=t, round=1, answer=t.final_choice)
                                   for k, t in enumerate(tasks) if k % 100 == 3])
print(p.pk)
"""


def timed(session: requests.Session, url: str, repeats: int) -> tuple[float, int, str | None]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        r = session.get(url, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    data = r.json()
    return statistics.median(times), len(data["results"]), data["next"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--deep", type=int, default=100, help="pages to follow before timing a deep page")
    args = parser.parse_args()
    with BenchServer(db="winnow_bench_data_manager") as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {server.create_user('alice')}"
        start = time.perf_counter()
        project = int(server.manage("shell", "-c", FILL.replace("N", str(args.tasks))).strip().splitlines()[-1])
        server.manage("dbshell", "--", "-c", "ANALYZE")
        print(f"filled {args.tasks:,} tasks in {time.perf_counter() - start:.0f} s")
        base = f"{server.url}/api/v1/tasks/?project={project}&page_size=200"
        ms, n, nxt = timed(session, base, args.repeats)
        print(f"{'first page':32s} {ms:7.1f} ms  ({n} rows)")
        url = base
        for _ in range(args.deep):
            url = session.get(url, timeout=60).json()["next"]
        ms, n, _ = timed(session, url, args.repeats)
        print(f"{f'page {args.deep + 1} (task ~{args.deep * 200:,})':32s} {ms:7.1f} ms  ({n} rows)")
        for name, query in [
            ("agreement 0 – 0.6", "agreement_max=0.6"), ("answer A", "answer=1"), ("annotator bob", "annotator=bob"),
            ("gold only", "gold=true"), ("audited", "audited=yes"), ("never audited", "audited=no"),
            ("duplicate images", "duplicate=true"), ("failed: 404", "status=failed&error=404"),
            ("agreement ≤ 0.6, not gold, bob", "agreement_max=0.6&gold=false&annotator=bob"),
            # Filters nothing matches walk the whole project: the worst case.
            ("no match: annotator nobody", "annotator=nobody"), ("no match: audit found wrong", "audited=incorrect"),
            ("no match: failure reason", "error=certificate"),
        ]:
            ms, n, _ = timed(session, f"{base}&{query}", args.repeats)
            print(f"{name:32s} {ms:7.1f} ms  ({n} rows)")


if __name__ == "__main__":
    main()
