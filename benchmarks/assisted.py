"""Model-assisted cleaning, end to end: does the machine do the easy part without lowering quality?

A planted pile of three kinds with known truth (labeling/demo.py: photograph-like fields, cartoon
renderings of other fields, and "neither": text, charts, noise) goes through the REST API of a
throwaway server on the embedded PostgreSQL 18 (pgvector), with a Celery worker doing the embedding
and suggestion jobs. Simulated annotators with one fixed error rate label it, every key and click
counted:

* project U, without assistance: 100 calibration images labeled and made gold step by step (10, 25,
  50, 100), the suggestions' accuracy on the production queue measured after each step against the
  planted truth; then its production batch labeled one image, one key at a time.
* project A, with assistance: 50 gold calibration tasks; its production batch labeled on suggested
  grid pages (everything pre-selected: unselect what is wrong with a click, one key answers the rest;
  the unselected ones one click and one key each), trap gold mixed in at the project's rate.

Both production batches are then audited (a sample reviewed against the truth) and the error rate
with its Wilson interval printed per mode. Then: an embedding job over 10,000 images (images/s,
training included), and nearest-neighbour queries among 100,000 embeddings (p50).

Targets (this 2-core machine): at least 5x fewer keystrokes per accepted label with assistance at an
audited error no higher; suggestion accuracy >= 90% after 50 gold; the embeddings of 10,000 images in
under 5 minutes; nearest-neighbour p50 under 20 ms. Exit 1 when one is missed.

    nice -n 5 .venv/bin/python benchmarks/assisted.py [--production 1500] [--throughput 10000] [--error 0.05]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import REPO, BenchServer  # noqa: E402
from labeling.demo import PLANTED_KINDS, planted_image  # noqa: E402

CHOICES = [
    {"label": "Photo", "hotkey": "1", "domain": "A", "description": "a photograph"},
    {"label": "Cartoon", "hotkey": "2", "domain": "B", "description": "a cartoon rendering of a photograph"},
    {"label": "Neither", "hotkey": "3", "domain": "excluded", "description": "text, a chart, noise"},
]
LABEL = {"photo": "Photo", "cartoon": "Cartoon", "neither": "Neither"}
UPLOAD_CHUNK = 100
PAGE = 48
AUDIT = 200
GOLD_STEPS = (10, 25, 50, 100)


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base}/api/v1/{path.lstrip('/')}", timeout=600, **kwargs)
        if response.status_code not in expect:
            raise SystemExit(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None


def pile(n: int, seed: int) -> list[tuple[str, bytes, str]]:
    """(file name, PNG bytes, kind), the kinds in turn."""
    return [(f"{PLANTED_KINDS[i % 3]}-{seed + i}.png", planted_image(PLANTED_KINDS[i % 3], seed + i, 64),
             PLANTED_KINDS[i % 3]) for i in range(n)]


def wait(predicate: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Annotator:
    """A simulated annotator: judges an image right with probability 1 - error, and counts what it presses."""

    def __init__(self, api: Api, choices: dict[str, int], truth: dict[str, str], error: float, seed: int) -> None:
        self.api, self.choices, self.truth, self.error = api, choices, truth, error
        self.rng = random.Random(seed)
        self.keys = self.clicks = self.answers = 0

    def judge(self, sha256: str) -> str:
        right = LABEL[self.truth[sha256]]
        if self.rng.random() >= self.error:
            return right
        return self.rng.choice([c for c in self.choices if c != right])

    def one_by_one(self, project: int, count: bool = True) -> None:
        """The single-image page: each image, one key."""
        while True:
            task = self.api.call("POST", f"projects/{project}/next-task/")
            if task is None:
                return
            label = self.judge(task["asset"]["sha256"])
            self.api.call("POST", f"tasks/{task['id']}/annotations/", json={"choice": self.choices[label]})
            if count:
                self.keys += 1
                self.answers += 1

    def assisted(self, project: int) -> None:
        """Suggested grid pages while there are any, then the single-image page for what is left."""
        while True:
            page = self.api.call("POST", f"projects/{project}/suggested-tasks/", json={"count": PAGE})
            if not page["tasks"]:
                break
            shown = page["label"]
            keep, unselect = [], []
            for task in page["tasks"]:
                right = LABEL[self.truth[task["asset"]["sha256"]]] == shown
                judged = right if self.rng.random() >= self.error else not right
                (keep if judged else unselect).append(task)
            self.clicks += len(unselect)  # a click unselects each image that is not the suggestion
            if keep:
                self.keys += 1  # one key answers every selected image
                self.answers += len(keep)
                self.api.call("POST", f"projects/{project}/annotations/bulk/", json={"answers": [
                    {"task": t["id"], "choice": page["choice"], "duration_ms": 400, "assisted": True} for t in keep]})
            for task in unselect:  # select it (a click) and press its answer's key
                self.clicks += 1
                self.keys += 1
                self.answers += 1
                label = self.judge(task["asset"]["sha256"])
                self.api.call("POST", f"projects/{project}/annotations/bulk/", json={"answers": [
                    {"task": task["id"], "choice": self.choices[label], "duration_ms": 1500}]})
        self.one_by_one(project)


def make_project(owner: Api, name: str, members: list[tuple[str, str]], trap_rate: float) -> tuple[int, dict[str, int]]:
    project = owner.call("POST", "projects/", json={
        "name": name, "choices": CHOICES, "gold_rate": 0, "overlap": 1, "trap_rate": trap_rate,
        "min_gold_answers": 100_000, "max_error_rate": 0.05, "lease_seconds": 3600})
    for username, role in members:
        owner.call("POST", f"projects/{project['id']}/members/", json={"username": username, "role": role})
    return project["id"], {c["label"]: c["id"] for c in project["choices"]}


def upload(owner: Api, project: int, name: str, kind: str, files: list[tuple[str, bytes, str]]) -> int:
    batch = owner.call("POST", f"projects/{project}/batches/", json={"name": name, "kind": kind})["id"]
    for start in range(0, len(files), UPLOAD_CHUNK):
        chunk = files[start : start + UPLOAD_CHUNK]
        result = owner.call("POST", f"batches/{batch}/tasks/",
                            files=[("files", (n, data, "image/png")) for n, data, _ in chunk])
        if result["summary"]["rejected"]:
            raise SystemExit(f"uploads were rejected: {result['items'][:3]}")
    owner.call("POST", f"batches/{batch}/finalize/")
    return batch


def tasks_of(owner: Api, project: int, batch: int, status: str | None = None) -> list[dict[str, Any]]:
    rows, url = [], f"tasks/?project={project}&batch={batch}&page_size=1000" + (f"&status={status}" if status else "")
    while url:
        page = owner.call("GET", url)
        rows += page["results"]
        url = page["next"].split("/api/v1/", 1)[1] if page["next"] else None
    return rows


def settle(owner: Api, project: int, gold: int, queued: int) -> dict[str, Any]:
    """Wait for every image to be embedded and a fit on `gold` gold tasks that suggested every queued task."""
    def ready() -> dict[str, Any] | None:
        state = owner.call("GET", f"projects/{project}/assist/")
        e, s = state["embeddings"], state["suggestions"]
        job = e["job"] or {}
        if job.get("status") == "failed":
            raise SystemExit(f"the embedding job failed: {job['error']}")
        if s["job_status"] == "failed":
            raise SystemExit(f"the suggestion refit failed: {s['job_error']}")
        done = (e["embedded"] == e["images"] and job.get("status") == "done" and s["gold"] == gold
                and s["suggested"] == queued and s["job_status"] == "done")
        return state if done else None

    return wait(ready, 1800, f"embeddings and a refit on {gold} gold", every=2)


def accuracy(owner: Api, project: int, batch: int, truth: dict[str, str]) -> float:
    rows = [r for r in tasks_of(owner, project, batch, "queued") if r["suggestion"]]
    right = sum(r["suggestion"]["label"] == LABEL[truth[r["asset"]["sha256"]]] for r in rows)
    return right / len(rows) if rows else 0.0


def audit(owner: Api, reviewer: Api, batch: int, truth: dict[str, str], choices: dict[str, int], seed: int) -> dict[str, Any]:
    wait(lambda: owner.call("GET", f"batches/{batch}/")["status"] == "labeled", 120, "the batch to be labeled")
    drawn = owner.call("POST", f"batches/{batch}/audit/", json={"size": AUDIT, "seed": seed})
    for task_id in drawn["tasks"]:
        task = owner.call("GET", f"tasks/{task_id}/")
        right = LABEL[truth[task["asset"]["sha256"]]]
        if task["answer"] == right:
            reviewer.call("POST", f"tasks/{task_id}/audit/", json={"correct": True})
        else:
            reviewer.call("POST", f"tasks/{task_id}/audit/", json={"correct": False, "choice": choices[right]})
    return owner.call("GET", f"batches/{batch}/quality/")


def nearest_neighbours(env: dict[str, str], project: int, total: int, queries: int = 200) -> dict[str, float]:
    """Fill the project up to `total` embeddings with random unit vectors (on stand-in image rows), then time
    `queries` nearest-neighbour queries through labeling.vectors (pgvector's HNSW index), and their recall
    against an exact search."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "MEDIA_ROOT", "WINNOW_VAR_DIR")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "winnow.settings")
    import django

    django.setup()
    import numpy as np
    from django.db import connection

    from labeling import vectors

    ids, matrix = vectors.read(project_id=project)
    missing = total - len(ids)
    started = time.monotonic()
    if missing > 0:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO labeling_asset (sha256, file, thumbnail, width, height, format, byte_size, created_at, phash)"
                " SELECT md5('bench' || i) || md5('mark' || i), 'none', 'none', 1, 1, 'PNG', 1, now(), NULL"
                " FROM generate_series(1, %s) AS i RETURNING id", [missing])
            fresh = [row[0] for row in cursor.fetchall()]
        rng = np.random.default_rng(0)
        for start in range(0, missing, 10_000):
            block = rng.normal(size=(min(10_000, missing - start), vectors.EMBEDDING_DIM)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            vectors.write(project_id=project, version=1, asset_ids=fresh[start : start + len(block)], matrix=block)
    inserted = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_embedding")
    ids, matrix = vectors.read(project_id=project)
    rng = np.random.default_rng(1)
    picks = rng.choice(len(ids), size=queries, replace=False)
    times, recalls = [], []
    for n, i in enumerate(picks):
        t0 = time.perf_counter()
        found = vectors.nearest(project_id=project, vector=matrix[i], k=12, exclude=[ids[i]])
        times.append((time.perf_counter() - t0) * 1000)
        if n < 50:
            exact = np.argsort(1 - matrix @ matrix[i])[1:13]
            recalls.append(len({a for a, _ in found} & {ids[j] for j in exact}) / 12)
    times.sort()
    return {"embeddings": len(ids), "insert_s": inserted, "p50_ms": statistics.median(times),
            "p95_ms": times[int(0.95 * len(times)) - 1], "recall_at_12": statistics.mean(recalls)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", type=int, default=1500, help="production images per project")
    parser.add_argument("--throughput", type=int, default=10_000, help="images of the embedding-throughput job")
    parser.add_argument("--neighbours", type=int, default=100_000, help="embeddings for the nearest-neighbour figure")
    parser.add_argument("--error", type=float, default=0.05, help="the simulated annotators' error rate")
    parser.add_argument("--redis-db", type=int, default=14)
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"benchmarks/assisted.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load_before[0]:.2f} "
          f"(1 min), {os.cpu_count()} cores; annotators' error rate {args.error:.0%}", flush=True)

    # The module by its path: importing the `winnow` package would load settings, which need a database URL.
    spec = importlib.util.spec_from_file_location("embedded_db", REPO / "winnow" / "embedded_db.py")
    embedded_db = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(embedded_db)  # type: ignore[union-attr]

    data_dir = Path(tempfile.mkdtemp(prefix="winnow-bench-pg-")) / "postgres"
    url = embedded_db.start(data_dir)
    server_url, _, query = url.partition("/winnow")
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.callback(lambda: embedded_db.stop(data_dir))
        server = stack.enter_context(BenchServer(db="winnow_bench_assisted", broker=f"redis://127.0.0.1:6379/{args.redis_db}",
                                                 pg=server_url, pg_query=query))
        env = {**server.env, "WINNOW_ASSIST_DEBOUNCE_SECONDS": "3"}
        subprocess.run([sys.executable, "-m", "celery", "-A", "winnow", "purge", "-f"], cwd=REPO, env=env,
                       check=True, capture_output=True)
        log = Path(tempfile.mkdtemp(prefix="winnow-bench-worker-")) / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "winnow", "worker", "-P", "solo", "-Q", "default",
             "--without-gossip", "--without-mingle", "-l", "warning", "-n", f"bench-assisted-{os.getpid()}@%h"],
            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(lambda: (worker.terminate(), worker.wait(60)))
        owner = Api(server.url, server.create_user("alice"))
        bob, dave, carol = (Api(server.url, server.create_user(n)) for n in ("bob", "dave", "carol"))
        members = [("bob", "annotator"), ("dave", "annotator"), ("carol", "reviewer")]

        # --- project U: gold grows, suggestions measured; then labeled one by one -----------------------
        u, u_choices = make_project(owner, "planted pile (unassisted)", members, trap_rate=0.0)
        cal_u = pile(max(GOLD_STEPS), seed=0)
        prod_u = pile(args.production, seed=100_000)
        truth = {hashlib.sha256(d).hexdigest(): k for _, d, k in cal_u + prod_u}
        cal_batch = upload(owner, u, "calibration", "calibration", cal_u)
        Annotator(bob, u_choices, truth, args.error, seed=1).one_by_one(u, count=False)
        calibration = sorted(tasks_of(owner, u, cal_batch), key=lambda t: t["id"])
        gold_done = 0

        def gold_up_to(n: int, project: int, rows: list[dict[str, Any]], choices: dict[str, int]) -> None:
            nonlocal gold_done
            for task in rows[gold_done:n]:
                owner.call("POST", f"tasks/{task['id']}/gold/", json={"choice": choices[LABEL[truth[task['asset']['sha256']]]]})
            gold_done = n

        gold_up_to(GOLD_STEPS[0], u, calibration, u_choices)
        owner.call("POST", f"projects/{u}/approve-calibration/")
        t0 = time.monotonic()
        prod_u_batch = upload(owner, u, "production", "production", prod_u)
        print(f"project U: {len(cal_u)} calibration + {len(prod_u)} production images uploaded in "
              f"{time.monotonic() - t0:.0f} s", flush=True)
        curve = []
        for step in GOLD_STEPS:
            gold_up_to(step, u, calibration, u_choices)
            owner.call("POST", f"projects/{u}/assist/", json={})  # a refit once all of this step's gold is in
            state = settle(owner, u, step, args.production)
            measured = accuracy(owner, u, prod_u_batch, truth)
            s = state["suggestions"]
            curve.append((step, measured, s["accuracy"], s["interval"]))
            print(f"  gold {step:>3}: suggestions right on {measured:.1%} of {args.production} queued images "
                  f"(estimate from held-out gold {s['accuracy']:.1%}, 95% {s['interval'][0]:.1%}-{s['interval'][1]:.1%})",
                  flush=True)
        results["curve"] = curve
        plain = Annotator(bob, u_choices, truth, args.error, seed=2)
        t0 = time.monotonic()
        plain.one_by_one(u)
        results["plain"] = (plain, time.monotonic() - t0)

        # --- project A: 50 gold, labeled on suggested pages ------------------------------------------------
        a, a_choices = make_project(owner, "planted pile (assisted)", members, trap_rate=0.1)
        cal_a = pile(50, seed=200_000)
        prod_a = pile(args.production, seed=300_000)
        truth.update({hashlib.sha256(d).hexdigest(): k for _, d, k in cal_a + prod_a})
        cal_a_batch = upload(owner, a, "calibration", "calibration", cal_a)
        Annotator(dave, a_choices, truth, args.error, seed=3).one_by_one(a, count=False)
        gold_done = 0
        gold_up_to(50, a, sorted(tasks_of(owner, a, cal_a_batch), key=lambda t: t["id"]), a_choices)
        owner.call("POST", f"projects/{a}/approve-calibration/")
        prod_a_batch = upload(owner, a, "production", "production", prod_a)
        owner.call("POST", f"projects/{a}/assist/", json={})
        state = settle(owner, a, 50, args.production)
        results["a_accuracy"] = (accuracy(owner, a, prod_a_batch, truth), state["suggestions"])
        print(f"project A: gold 50: suggestions right on {results['a_accuracy'][0]:.1%}", flush=True)
        helped = Annotator(dave, a_choices, truth, args.error, seed=4)
        t0 = time.monotonic()
        helped.assisted(a)
        results["helped"] = (helped, time.monotonic() - t0)
        annotators = owner.call("GET", f"projects/{a}/annotators/")
        results["traps"] = next(r for r in annotators if r["username"] == "dave")

        results["audit_plain"] = audit(owner, carol, prod_u_batch, truth, u_choices, seed=11)
        results["audit_helped"] = audit(owner, carol, prod_a_batch, truth, a_choices, seed=12)
        results["labels"] = {m: sum(1 for t in tasks_of(owner, p, b, "completed") if not t["is_gold"])
                             for m, p, b in (("plain", u, prod_u_batch), ("helped", a, prod_a_batch))}

        # --- embedding throughput: one job over a fresh project's images -----------------------------------
        t_project, _ = make_project(owner, "throughput", [], trap_rate=0.0)
        t0 = time.monotonic()
        upload(owner, t_project, "pile", "calibration", pile(args.throughput, seed=500_000))
        uploaded = time.monotonic() - t0

        def embedded(job_id: int | None = None) -> dict[str, Any] | None:
            e = owner.call("GET", f"projects/{t_project}/assist/")["embeddings"]
            if e["job"] and e["job"]["status"] == "failed":
                raise SystemExit(f"the embedding job failed: {e['job']['error']}")
            done = e["embedded"] == e["images"] == args.throughput and e["job"]["status"] == "done"
            return e if done and (job_id is None or e["job"]["id"] == job_id) else None

        # The uploads' own jobs trained on the first images and embedded the rest as they came; the figure is
        # one job that trains a new model on all of them and embeds them all.
        wait(embedded, 1800, f"the embeddings of {args.throughput} images", every=2)
        queued = owner.call("POST", f"projects/{t_project}/assist/", json={"retrain": True})["embeddings"]["job"]["id"]
        job = wait(lambda: embedded(queued), 1800, "the retrained embedding job", every=2)["job"]
        results["throughput"] = {"upload_s": uploaded, "train_s": job["train_seconds"], "embed_s": job["embed_seconds"],
                                 "images": args.throughput}
        results["neighbours"] = nearest_neighbours(server.env, t_project, args.neighbours)
    return report(results, args, load_before)


def report(r: dict[str, Any], args: argparse.Namespace, load_before: tuple[float, float, float]) -> int:
    plain, plain_s = r["plain"]
    helped, helped_s = r["helped"]
    labels = r["labels"]
    keys_plain = plain.keys / labels["plain"]
    keys_helped = helped.keys / labels["helped"]
    clicks_helped = helped.clicks / labels["helped"]
    ratio = keys_plain / keys_helped if keys_helped else float("inf")
    ap, ah = r["audit_plain"], r["audit_helped"]
    acc50 = next(m for g, m, _, _ in r["curve"] if g == 50)
    t = r["throughput"]
    job_s = (t["train_s"] or 0) + (t["embed_s"] or 0)
    nn = r["neighbours"]
    print()
    print("suggestion accuracy as gold grows (project U, measured on the production queue against the truth):")
    for gold, measured, estimate, interval in r["curve"]:
        print(f"  {gold:>3} gold: {measured:6.1%}   (held-out gold estimate {estimate:.1%}, 95% {interval[0]:.1%}-{interval[1]:.1%})")
    print(f"  project A, 50 gold: {r['a_accuracy'][0]:.1%}")
    print()
    print(f"{'mode':<12} {'labels':>7} {'keys':>7} {'clicks':>7} {'keys/label':>11} {'clicks/label':>13} {'minutes':>8}"
          f" {'audited':>8} {'errors':>7} {'error rate':>11} {'Wilson 95%':>16}")
    for name, a, n, s, q in (("one by one", plain, labels["plain"], plain_s, ap), ("assisted", helped, labels["helped"], helped_s, ah)):
        print(f"{name:<12} {n:>7} {a.keys:>7} {a.clicks:>7} {a.keys / n:>11.3f} {a.clicks / n:>13.3f} {s / 60:>8.1f}"
              f" {q['audited']:>8} {q['errors']:>7} {q['error_rate']:>11.2%} {q['wilson'][0]:>7.2%}-{q['wilson'][1]:.2%}")
    print(f"  assisted batch, by answer: assisted {ah['assisted']['errors']}/{ah['assisted']['audited']}, "
          f"unassisted {ah['unassisted']['errors']}/{ah['unassisted']['audited']}")
    tr = r["traps"]
    print(f"  traps: {tr['traps_shown']} shown, {tr['traps_accepted']} accepted; dave's gold accuracy {tr['gold_accuracy']:.1%}")
    print(f"  {ratio:.1f}x fewer keystrokes per accepted label with assistance ({clicks_helped:.3f} clicks per label besides)")
    print()
    print(f"embedding job, {t['images']} images: training {t['train_s']:.0f} s + embedding {t['embed_s']:.0f} s = {job_s:.0f} s "
          f"({t['images'] / job_s:.0f} images/s; embedding alone {t['images'] / max(t['embed_s'], 1e-9):.0f} images/s); "
          f"upload {t['upload_s']:.0f} s")
    print(f"nearest neighbours among {nn['embeddings']:,} embeddings (pgvector HNSW, k=12): p50 {nn['p50_ms']:.1f} ms, "
          f"p95 {nn['p95_ms']:.1f} ms, recall@12 {nn['recall_at_12']:.1%} against an exact search "
          f"(stand-in vectors inserted in {nn['insert_s']:.0f} s)")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    checks = [
        ("keystrokes per accepted label >= 5x fewer with assistance", ratio >= 5),
        ("assisted audited error rate no higher than one by one", ah["error_rate"] <= ap["error_rate"]),
        ("suggestion accuracy >= 90% after 50 gold", acc50 >= 0.9),
        ("embeddings of 10,000 images in under 5 minutes", t["images"] >= 10_000 and job_s < 300),
        ("nearest-neighbour p50 < 20 ms at 100,000 embeddings", nn["embeddings"] >= 100_000 and nn["p50_ms"] < 20),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
