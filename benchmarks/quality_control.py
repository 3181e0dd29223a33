"""Quality-control benchmark: Dawid–Skene at project scale, then audits and quality figures over HTTP.

1. In process: Dawid–Skene on a planted data set (items × annotators, overlap 3, three labels; a
   quarter of the annotators answer at random): seconds, iterations, peak memory the estimate
   allocated (tracemalloc, which numpy reports to), and accuracy against the planted truth beside
   majority vote.
2. Against gunicorn + PostgreSQL: a labeled production batch of --tasks tasks, three answers each by
   --annotators annotators. Times the audit plan, drawing a 200-task stratified sample, 200 reviewer
   verdicts one request each (p50/p95), the batch's quality figures, the consensus endpoint
   (Dawid–Skene over every answer of the project) with the serving worker's peak memory, and the
   annotator table.

    .venv/bin/python benchmarks/quality_control.py [--items 100000] [--tasks 10000] [--annotators 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import BenchServer  # noqa: E402
from labeling import stats  # noqa: E402 - pure numpy/scipy, no Django

OVERLAP = 3
LABELS = 3
SPAMMERS = 0.25  # share of annotators answering at random
GOOD_ACCURACY = 0.85


def planted(items: int, annotators: int, seed: int = 7) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Truth per item and (item, annotator, label) answers: good annotators right 85% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, LABELS, items)
    spammer = rng.random(annotators) < SPAMMERS
    who = np.stack([rng.choice(annotators, OVERLAP, replace=False) for _ in range(items)])
    triples = []
    for item in range(items):
        for worker in who[item]:
            if spammer[worker] or rng.random() > GOOD_ACCURACY:
                label = int(rng.integers(0, LABELS))
            else:
                label = int(truth[item])
            triples.append((item, int(worker), label))
    return truth, triples


def bench_dawid_skene(items: int, annotators: int) -> None:
    truth, triples = planted(items, annotators)
    tracemalloc.start()
    start = time.perf_counter()
    estimate = stats.dawid_skene(triples)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ds_right = sum(estimate.answer(i) == truth[i] for i in range(items))
    by_item: dict[int, list[int]] = {}
    for item, _, label in triples:
        by_item.setdefault(item, []).append(label)
    # Majority vote with a tie broken at random (what "ask one more" would do, without the extra answer).
    rng = np.random.default_rng(1)
    mv_right = 0
    for item, answers in by_item.items():
        m = stats.majority(answers)
        answer = m.answer if not m.tied else int(rng.choice(answers))
        mv_right += answer == truth[item]
    print(f"dawid-skene: {items:,} items × {annotators} annotators × {OVERLAP} = {len(triples):,} answers in "
          f"{elapsed:.1f} s ({estimate.iterations} iterations), peak allocated {peak / 2**20:.0f} MB; "
          f"accuracy {ds_right / items:.1%} vs majority {mv_right / items:.1%}")


FILL = """
import random
from django.contrib.auth import get_user_model
from django.db import transaction
from labeling.models import Annotation, Batch, Choice, Membership, Project, Task
n, k = N_TASKS, N_ANNOTATORS
User = get_user_model()
alice = User.objects.get(username="alice")
carol = User.objects.get(username="carol")
rng = random.Random(11)
with transaction.atomic():
    p = Project.objects.create(name="quality", created_by=alice, overlap=3, max_error_rate=0.05)
    Membership.objects.create(project=p, user=alice, role="owner")
    Membership.objects.create(project=p, user=carol, role="reviewer")
    choices = [Choice.objects.create(project=p, label=l, hotkey=str(i + 1), domain=d, order=i)
               for i, (l, d) in enumerate([("Photo", "A"), ("Anime", "B"), ("Neither", "excluded")])]
    users = User.objects.bulk_create([User(username=f"ann{i:03d}") for i in range(k)])
    Membership.objects.bulk_create([Membership(project=p, user=u, role="annotator") for u in users])
    b = Batch.objects.create(project=p, name="big", kind="production", status="labeled")
    tasks = Task.objects.bulk_create([
        Task(project=p, batch=b, status="completed", final_choice=choices[i % 3], decided_by="consensus",
             agreement=1.0, annotation_count=3) for i in range(n)])
    answers = []
    for t in tasks:
        for u in rng.sample(users, 3):
            right = rng.random() < 0.9
            answers.append(Annotation(task=t, annotator=u, duration_ms=rng.randint(400, 3000),
                                      choice=t.final_choice if right else rng.choice(choices)))
    Annotation.objects.bulk_create(answers, batch_size=5000)
print(p.pk, b.pk, choices[2].pk)
"""


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {(time.perf_counter() - start) * 1000:,.0f} ms")
    return result


def bench_http(tasks: int, annotators: int) -> None:
    with BenchServer(db="winnow_bench_qc") as server:
        owner = {"Authorization": f"Token {server.create_user('alice')}"}
        reviewer = {"Authorization": f"Token {server.create_user('carol')}"}
        start = time.perf_counter()
        script = FILL.replace("N_TASKS", str(tasks)).replace("N_ANNOTATORS", str(annotators))
        try:
            out = server.manage("shell", "-c", script)
        except subprocess.CalledProcessError as exc:
            sys.exit(f"filling the project failed:\n{exc.stderr}")
        project, batch, neither = map(int, out.strip().splitlines()[-1].split())
        server.manage("dbshell", "--", "-c", "ANALYZE")
        print(f"filled {tasks:,} tasks with {tasks * 3:,} answers by {annotators} annotators in "
              f"{time.perf_counter() - start:.0f} s")
        api = server.url + "/api/v1"
        for _ in range(4):  # warm both workers (first requests import the API modules)
            requests.get(f"{api}/batches/{batch}/audit/?size=10", headers=owner, timeout=60).raise_for_status()
        plan = timed("audit plan (GET, size 200)", lambda: requests.get(
            f"{api}/batches/{batch}/audit/?size=200", headers=owner, timeout=60).json())
        assert plan["size"] == 200, plan
        drawn = timed("draw a stratified sample of 200 (POST)", lambda: requests.post(
            f"{api}/batches/{batch}/audit/", json={"size": 200}, headers=owner, timeout=60))
        assert drawn.status_code == 201, drawn.text
        sample = drawn.json()["tasks"]
        latencies = []
        with requests.Session() as session:
            session.headers.update(reviewer)
            for i, task in enumerate(sample):
                body = {"correct": True} if i % 50 else {"correct": False, "choice": neither}
                start = time.perf_counter()
                response = session.post(f"{api}/tasks/{task}/audit/", json=body, timeout=60)
                latencies.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text
        q = statistics.quantiles(latencies, n=20)
        print(f"200 audit verdicts, one request each: p50 {statistics.median(latencies):.1f} ms, p95 {q[18]:.1f} ms")
        quality = timed("batch quality figures (GET)", lambda: requests.get(
            f"{api}/batches/{batch}/quality/", headers=owner, timeout=60).json())
        print(f"  → {quality['summary']}, Wilson {quality['wilson'][0]:.2%}–{quality['wilson'][1]:.2%}, "
              f"decision {quality['decision']}")
        server.reset_peak()
        consensus = timed(f"consensus (Dawid–Skene over {tasks * 3:,} answers, GET)", lambda: requests.get(
            f"{api}/batches/{batch}/consensus/", headers=owner, timeout=600).json())
        print(f"  → {len(consensus['tasks']):,} tasks, {consensus['flagged']:,} flagged, "
              f"{consensus['iterations']} iterations, worker peak RSS {server.peak_rss_mb():.0f} MB")
        table = timed("annotator table (GET)", lambda: requests.get(
            f"{api}/projects/{project}/annotators/", headers=owner, timeout=60).json())
        assert len(table) == annotators + 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=200)
    args = parser.parse_args()
    bench_dawid_skene(args.items, args.annotators)
    bench_http(args.tasks, args.annotators)


if __name__ == "__main__":
    main()
