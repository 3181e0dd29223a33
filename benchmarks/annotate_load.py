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

    from labeling import services
    from labeling.models import Asset, Batch, BatchKind, BatchStatus, Membership, Project, Role, Task

    User = get_user_model()
    owner = User.objects.create_user("owner", password="benchmark-password")
    project = services.create_project(
        created_by=owner, fields={"name": "load", "overlap": 1},
        choices=[{"label": "A", "hotkey": "1", "domain": "A"}, {"label": "B", "hotkey": "2", "domain": "B"}],
    )
    Project.objects.filter(pk=project.pk).update(calibration_approved_at=project.created_at)
    users = User.objects.bulk_create([User(username=f"annotator{i}") for i in range(annotators)])
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    png = services.demo_image(1, 64)
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
    connection.close()
    return project.pk, project.choices.first().pk, [t.key for t in tokens]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30, help="length of the steady phase")
    parser.add_argument("--step-seconds", type=float, default=10, help="length of each saturation step")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--single-cycles", type=int, default=500)
    parser.add_argument("--only-single", action="store_true", help="stop after the one-client phase")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/3")
    args = parser.parse_args()

    tasks = args.single_cycles + 30 + args.annotators * int(args.seconds / 2 + 2) + 100_000
    with BenchServer(db="winnow_bench_annotate", workers=args.workers, broker=args.broker) as server:
        print(f"gunicorn: {args.workers} sync workers on port {server.port}; seeding {tasks:,} tasks …", flush=True)
        project_id, choice_id, tokens = seed(server, args.annotators, tasks)

        print("\n1. one client, back to back")
        stats = single_client(server.port, project_id, choice_id, tokens[0], args.single_cycles)
        print("  ", summary(stats, "next-task"))
        print("  ", summary(stats, "submit"))
        if args.only_single:
            return

        print(f"\n2. {args.annotators} annotators, one image every 2 s each, {args.seconds:.0f} s")
        stats, elapsed = paced(server.port, project_id, choice_id, tokens, 2.0, args.seconds)
        print(f"   {stats.requests() / elapsed:.0f} requests/s, errors: {dict(stats.errors) or 0}")
        print("  ", summary(stats, "next-task"))
        print("  ", summary(stats, "submit"))

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

if __name__ == "__main__":
    main()
