"""Annotator load: simulated annotators leasing and answering tasks against gunicorn + PostgreSQL.

Starts its own gunicorn on a free loopback port with a throwaway PostgreSQL database, seeds one
project with enough queued tasks, then runs three phases and prints latency percentiles:

1. one client: next-task then submit, back to back (targets: next p50 < 5 ms, submit p99 < 15 ms);
2. N annotators (default 200), each taking one image every 2 s (≈ N requests/s): p99 < 50 ms, no errors;
3. saturation: annotators answering back to back (no pause), 1, 2, 4 … 64 of them, until the
   next-task or submit p99 passes 250 ms; prints the highest throughput that stayed under it.

Latency is measured in the client (a thread per annotator, one TCP connection per request, as
gunicorn's sync workers close connections), so it includes the client's own scheduling on a
shared machine. Every phase is bounded in time.

    .venv/bin/python benchmarks/annotate_load.py [--annotators 200] [--seconds 30] [--workers 4]
    .venv/bin/python benchmarks/annotate_load.py --curve   # next-task as the database grows, 10k → 1M tasks

Before the measure, 300,000 tasks (--other-tasks) are bulk-imported into 30 other projects and the
task table is left unanalysed with autovacuum off, as right after an owner's big upload: the plan of
the per-image statements must not depend on statistics. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import BenchServer  # noqa: E402


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latencies[name].append(seconds)
            if not ok:
                self.errors[f"{name}: {detail}"] += 1

    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(stats: Stats, name: str) -> str:
    values = [v * 1000 for v in stats.latencies[name]]
    return (f"{name:<9} n={len(values):>6}  p50={percentile(values, 50):7.2f} ms  "
            f"p95={percentile(values, 95):7.2f} ms  p99={percentile(values, 99):7.2f} ms")


class Client:
    """One annotator: lease, then answer, through the public API with a token."""

    def __init__(self, port: int, token: str, project_id: int, choice_id: int, stats: Stats) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}
        self.project_id = project_id
        self.choice_id = choice_id
        self.stats = stats

    def _call(self, name: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start = time.perf_counter()
        try:
            conn.request("POST", path, body=json.dumps(body or {}), headers=self.headers)
            response = conn.getresponse()
            data = response.read()
        except OSError as exc:
            self.stats.record(name, time.perf_counter() - start, False, type(exc).__name__)
            return 0, b""
        finally:
            conn.close()
        elapsed = time.perf_counter() - start
        ok = response.status in (200, 201, 204)
        self.stats.record(name, elapsed, ok, str(response.status))
        return response.status, data

    def cycle(self) -> bool:
        """Lease one task and answer it; False when nothing is left."""
        status, data = self._call("next-task", f"/api/v1/projects/{self.project_id}/next-task/")
        if status != 200:
            return False
        task_id = json.loads(data)["id"]
        self._call("submit", f"/api/v1/tasks/{task_id}/annotations/", {"choice": self.choice_id, "duration_ms": 900})
        return True


def seed(server: BenchServer, annotators: int, tasks: int) -> tuple[int, int, list[str]]:
    """Users with tokens, one project with a finalized batch of `tasks` queued tasks sharing one image."""
    os.environ.update({k: server.env[k] for k in ("DATABASE_URL", "MEDIA_ROOT", "WINNOW_VAR_DIR", "DEBUG", "SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "winnow.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from rest_framework.authtoken.models import Token

    from labeling import demo, projects
    from labeling.models import Asset, Batch, BatchKind, BatchStatus, Membership, Project, Role, Task

    User = get_user_model()
    owner = User.objects.create_user("owner", password="benchmark-password")
    project = projects.create_project(
        created_by=owner, fields={"name": "load", "overlap": 1},
        choices=[{"label": "A", "hotkey": "1", "domain": "A"}, {"label": "B", "hotkey": "2", "domain": "B"}],
    )
    Project.objects.filter(pk=project.pk).update(calibration_approved_at=project.created_at)
    users = User.objects.bulk_create([User(username=f"annotator{i}") for i in range(annotators)])
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    png = demo.demo_image(1, 64)
    asset = Asset(sha256="0" * 64, width=64, height=64, format="PNG", byte_size=len(png))
    asset.file.save("assets/bench.png", ContentFile(png), save=False)
    asset.thumbnail.save("thumbs/bench.png", ContentFile(png), save=False)
    asset.save()
    batch = Batch.objects.create(project=project, name="load", kind=BatchKind.PRODUCTION, status=BatchStatus.FINALIZED,
                                 created_by=owner)
    Task.objects.bulk_create(
        (Task(project=project, batch=batch, asset=asset) for _ in range(tasks)), batch_size=5000
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        # As right after a bulk import: the planner works from whatever statistics the table had.
        cursor.execute("ALTER TABLE labeling_task SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)")
    connection.close()
    return project.pk, project.choices.first().pk, [t.key for t in tokens]


def import_other_projects(count: int, tasks: int, owner_name: str = "owner") -> int:
    """Bulk-import `tasks` queued tasks spread over `count` other projects, as an owner's big upload
    would, and leave the table unanalysed (autovacuum off on it), as it is right after an import.

    Returns the number of tasks in the database afterwards."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling import projects
    from labeling.models import Batch, BatchKind, BatchStatus, Project, Task

    owner = get_user_model().objects.get(username=owner_name)
    template = Task.objects.order_by("id").first()
    columns = [f.column for f in Task._meta.concrete_fields if f.column not in ("id", "project_id", "batch_id", "unique_id")]
    existing = Project.objects.filter(name__startswith="other-").count()
    for i in range(count):
        name = f"other-{existing + i}"
        project = projects.create_project(created_by=owner, fields={"name": name, "overlap": 1},
                                          choices=[{"label": "A", "hotkey": "1", "domain": "A"}])
        batch = Batch.objects.create(project=project, name=name, kind=BatchKind.PRODUCTION,
                                     status=BatchStatus.FINALIZED, created_by=owner)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO labeling_task (project_id, batch_id, {', '.join(columns)}) "  # noqa: S608 (model columns)
                f"SELECT %s, %s, {', '.join('t.' + c for c in columns)} FROM labeling_task t, generate_series(1, %s) "
                "WHERE t.id = %s",
                [project.pk, batch.pk, tasks // count, template.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM labeling_task")
        (total,) = cursor.fetchone()
    connection.close()
    return total


def single_client(port: int, project_id: int, choice_id: int, token: str, cycles: int) -> Stats:
    warm = Stats()
    client = Client(port, token, project_id, choice_id, warm)
    for _ in range(30):  # warm the workers' connections and caches
        client.cycle()
    stats = Stats()
    client.stats = stats
    for _ in range(cycles):
        if not client.cycle():
            break
    return stats


def paced(port: int, project_id: int, choice_id: int, tokens: list[str], interval: float, seconds: float) -> tuple[Stats, float]:
    """Each annotator starts one lease-and-answer cycle every `interval` seconds, for `seconds`."""
    stats = Stats()
    stop = time.monotonic() + seconds
    start_barrier = threading.Barrier(len(tokens) + 1)

    def run(i: int, token: str) -> None:
        client = Client(port, token, project_id, choice_id, stats)
        start_barrier.wait()
        # Spread the annotators over the interval so they do not all ask at once.
        next_at = time.monotonic() + interval * i / len(tokens)
        while True:
            # Never sleep past the end of the phase: the rate is counted over the phase's length.
            delay = min(next_at, stop) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= stop:
                return
            if not client.cycle():
                return
            next_at += interval

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + 60)
    return stats, time.monotonic() - began


def curve(args: argparse.Namespace) -> bool:
    """next-task and submit p50 of one client as the database grows from 10k to 1M tasks, each size
    reached by a bulk import into other projects just before it is measured (no ANALYZE after it)."""
    with BenchServer(db="winnow_bench_annotate", workers=args.workers, broker=args.broker) as server:
        project_id, choice_id, tokens = seed(server, 1, 2000 + 5 * (args.single_cycles + 30))
        print("tasks in the database   next-task p50   submit p50   ratio")
        figures = []
        for size in (10_000, 100_000, 300_000, 1_000_000):
            from labeling.models import Task

            missing = size - Task.objects.count()
            if missing > 0:
                import_other_projects(args.other_projects, missing)
            stats = single_client(server.port, project_id, choice_id, tokens[0], args.single_cycles)
            next_p50 = percentile(stats.latencies["next-task"], 50) * 1000
            submit_p50 = percentile(stats.latencies["submit"], 50) * 1000
            figures.append((size, next_p50, submit_p50))
            print(f"{size:>21,}   {next_p50:10.2f} ms   {submit_p50:7.2f} ms   {next_p50 / submit_p50:5.2f}", flush=True)
    ok = True
    for size, next_p50, submit_p50 in figures:
        if next_p50 >= 5 or next_p50 > 1.5 * submit_p50:
            print(f"MISSED at {size:,} tasks: next-task p50 {next_p50:.2f} ms (target < 5 ms and <= 1.5 x submit p50)")
            ok = False
    smallest, largest = figures[0][1], figures[-1][1]
    if largest > 1.3 * smallest + 0.5:
        print(f"MISSED: next-task p50 not flat: {smallest:.2f} ms at 10k, {largest:.2f} ms at 1M tasks")
        ok = False
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30, help="length of the steady phase")
    parser.add_argument("--step-seconds", type=float, default=10, help="length of each saturation step")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--single-cycles", type=int, default=500)
    parser.add_argument("--only-single", action="store_true", help="stop after the one-client phase")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--other-tasks", type=int, default=300_000,
                        help="tasks bulk-imported into other projects just before the measure")
    parser.add_argument("--other-projects", type=int, default=30)
    parser.add_argument("--curve", action="store_true",
                        help="only the one-client figures at 10k, 100k, 300k and 1M tasks in the database")
    args = parser.parse_args()
    if args.curve:
        sys.exit(0 if curve(args) else 1)

    tasks = args.single_cycles + 30 + args.annotators * int(args.seconds / 2 + 2) + 100_000
    with BenchServer(db="winnow_bench_annotate", workers=args.workers, broker=args.broker) as server:
        print(f"gunicorn: {args.workers} sync workers on port {server.port}; seeding {tasks:,} tasks …", flush=True)
        project_id, choice_id, tokens = seed(server, args.annotators, tasks)
        if args.other_tasks:
            total = import_other_projects(args.other_projects, args.other_tasks)
            print(f"bulk-imported {args.other_tasks:,} tasks into {args.other_projects} other projects "
                  f"just before the measure: {total:,} tasks in the database, table not analysed since", flush=True)

        print("\n1. one client, back to back")
        stats = single_client(server.port, project_id, choice_id, tokens[0], args.single_cycles)
        print("  ", summary(stats, "next-task"))
        print("  ", summary(stats, "submit"))
        next_p50 = percentile(stats.latencies["next-task"], 50) * 1000
        submit_p50 = percentile(stats.latencies["submit"], 50) * 1000
        submit_p99 = percentile(stats.latencies["submit"], 99) * 1000
        missed = []
        if next_p50 >= 5 or next_p50 > 1.5 * submit_p50:
            missed.append(f"next-task p50 {next_p50:.2f} ms (target < 5 ms and <= 1.5 x submit p50 {submit_p50:.2f} ms)")
        if submit_p99 >= 15:
            missed.append(f"submit p99 {submit_p99:.2f} ms (target < 15 ms)")
        if args.only_single:
            for line in missed:
                print("MISSED:", line)
            sys.exit(1 if missed else 0)

        print(f"\n2. {args.annotators} annotators, one image every 2 s each, {args.seconds:.0f} s")
        stats, elapsed = paced(server.port, project_id, choice_id, tokens, 2.0, args.seconds)
        rate = stats.requests() / elapsed
        print(f"   {rate:.0f} requests/s, errors: {dict(stats.errors) or 0}")
        print("  ", summary(stats, "next-task"))
        print("  ", summary(stats, "submit"))
        paced_p99 = max(percentile(stats.latencies["next-task"], 99), percentile(stats.latencies["submit"], 99)) * 1000
        if stats.errors or paced_p99 >= 50 or rate < 0.95 * args.annotators:
            missed.append(f"{args.annotators} annotators: {rate:.0f} requests/s, p99 {paced_p99:.1f} ms, "
                          f"{sum(stats.errors.values())} errors (target {args.annotators} requests/s, p99 < 50 ms, no errors)")

        print(f"\n3. saturation: annotators answering back to back, more each step, {args.step_seconds:.0f} s a step")
        best = None
        for clients in (1, 2, 4, 8, 16, 32, 64):
            stats, elapsed = paced(server.port, project_id, choice_id, tokens[:clients], 0.0, args.step_seconds)
            rate = stats.requests() / elapsed
            p99 = max(percentile(stats.latencies["next-task"], 99), percentile(stats.latencies["submit"], 99)) * 1000
            errors = sum(stats.errors.values())
            print(f"   {clients:3d} annotators → {rate:6.0f} requests/s, p99 {p99:7.1f} ms, errors {errors}")
            if p99 > 250 or errors:
                break
            best = rate
        if best is None:
            print("   p99 passed 250 ms with a single annotator")
        else:
            print(f"   saturation: about {best:.0f} requests/s with p99 under 250 ms")
    for line in missed:
        print("MISSED:", line)
    sys.exit(1 if missed else 0)

if __name__ == "__main__":
    main()
