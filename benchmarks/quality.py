"""End to end: does a run trained through Winnow learn a known mapping better than the baselines?

1. Make the known-mapping data set (photographs as A, their cartoon filter as B; held-out pairs).
2. Push it through Winnow's REST API as an owner and an annotator would: a project with A / B /
   excluded choices, a calibration batch (labeled, reviewed into gold, approved), a production
   batch (uploaded, labeled, audit sample drawn and reviewed by the owner, accepted; only accepted
   batches reach a split), a split (built, approved), a CycleGAN run (64x64 on the CPU, stopped by
   its time limit) and an evaluation of its last checkpoint.
3. Print PSNR and SSIM of the trained generators against the known answers, beside the identity
   map and a model-free colour transfer, both directions.

The labels are the true domains (the benchmark plays perfect annotators and reviewers); what it
measures is the model, and that the whole path from upload to evaluation works.

    .venv/bin/python benchmarks/quality.py [--minutes 10] [--size 64] [--n 200]
    .venv/bin/python benchmarks/quality.py --base http://winnow.example --token OWNER_TOKEN \
        --annotator bob --annotator-token BOB_TOKEN

Without --base it starts its own gunicorn, a Celery worker for the training queue, a throwaway
PostgreSQL database and media folder. With --base, the server's training worker does the work.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._server import REPO, BenchServer  # noqa: E402
from training.evaluation.known_mapping import KnownMappingSet, make_known_mapping  # noqa: E402

UPLOAD_CHUNK = 50
CALIBRATION_PER_DOMAIN = 5
AUDIT_MAX = 200
# With every audit right, the upper 95% Wilson bound is 3.84 / (n + 3.84): 0.05 is met from 73 audits,
# so the small smoke-test sizes (--n 40) still pass while the default run audits 200.
MAX_ERROR_RATE = 0.05


class Winnow:
    """The REST API as one owner uses it, failing loudly with the server's message."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base}/api/v1/{path.lstrip('/')}", timeout=600, **kwargs)
        if response.status_code not in expect:
            raise SystemExit(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(api: Winnow, batch: int, files: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(files), UPLOAD_CHUNK):
        chunk = files[start: start + UPLOAD_CHUNK]
        result = api.call("POST", f"batches/{batch}/tasks/", files=[("files", (name, data, "image/png")) for name, data in chunk])
        if result["summary"]["rejected"]:
            raise SystemExit(f"uploads were rejected: {[i for i in result['items'] if i['status'] == 'rejected']}")


def label_everything(api: Winnow, project: int, truth: dict[str, int]) -> int:
    """Lease and answer tasks until none is left; answers come from the known domains (by sha256)."""
    answered = 0
    while True:
        tasks = api.call("POST", f"projects/{project}/next-tasks/", json={"count": 50})["tasks"]
        if not tasks:
            return answered
        answers = [{"task": t["id"], "choice": truth[t["asset"]["sha256"]], "duration_ms": 500} for t in tasks]
        result = api.call("POST", f"projects/{project}/annotations/bulk/", json={"answers": answers})
        if result["summary"]["rejected"]:
            raise SystemExit(f"answers were rejected: {result['results'][:5]}")
        answered += len(answers)


def audit(api: Winnow, project: int, batch: int, truth_by_task: dict[int, int], size: int) -> tuple[str, int]:
    """Draw the batch's audit sample and review it; returns the batch's status and how many were audited."""
    drawn = api.call("POST", f"batches/{batch}/audit/", json={"size": size, "seed": 0})
    audited = 0
    while True:
        # The queue hands out a page of open audits at a time; reviewing shrinks it.
        queue = [item for item in api.call("GET", f"projects/{project}/audits/") if item["batch"] == batch]
        if not queue:
            break
        for item in queue:
            right = truth_by_task.get(item["task"])
            body = {"correct": True} if right is None or right == item["answer"] else {"correct": False, "choice": right}
            api.call("POST", f"tasks/{item['task']}/audit/", json=body)
            audited += 1
    if audited != len(drawn["tasks"]):
        raise SystemExit(f"{len(drawn['tasks'])} tasks were drawn for audit but {audited} reached the reviewer")
    return api.call("GET", f"batches/{batch}/")["status"], audited


def wait(api: Winnow, path: str, done: set[str], every: float, describe: Any) -> dict[str, Any]:
    last = ""
    while True:
        state = api.call("GET", path)
        line = describe(state)
        if line != last:
            print(f"  {line}", flush=True)
            last = line
        if state["status"] in done:
            return state
        time.sleep(every)


# The model this benchmark trains unless --config says otherwise: small enough for the CPU to take
# thousands of steps in ten minutes, starting from the identity (residual), with a discriminator that
# judges 16-pixel patches (the filter's edges and flat colours are local). See docs/BENCHMARKS.md.
DEFAULT_MODEL = {"residual": True, "ngf": 16, "ndf": 32, "n_blocks": 3, "n_layers_d": 1, "lambda_identity": 1.0}


def push_and_train(api: Winnow, annotator: Winnow, annotator_name: str, data: KnownMappingSet, minutes: float,
                   config: dict[str, Any]) -> dict[str, Any]:
    """The owner (`api`) sets up, reviews and audits; the annotator labels (reviewers may not audit their own answers)."""
    t0 = time.monotonic()
    project = api.call("POST", "projects/", json={
        "name": f"Known mapping {data.filter_name} {data.size}px seed {data.seed}",
        "instructions": "Is this a photograph or a cartoon?", "question": "Photograph or cartoon?", "overlap": 1,
        "audit_sample_size": AUDIT_MAX, "max_error_rate": MAX_ERROR_RATE,
        "choices": [
            {"label": "Photograph", "hotkey": "1", "domain": "A", "long_hint": "a natural photograph"},
            {"label": "Cartoon", "hotkey": "2", "domain": "B", "long_hint": "flat colours with dark outlines"},
            {"label": "Neither", "hotkey": "3", "domain": "excluded"},
        ],
    })
    choice = {c["domain"]: c["id"] for c in project["choices"]}
    api.call("POST", f"projects/{project['id']}/members/", json={"username": annotator_name, "role": "annotator"})
    files = [(f"a-{i:05d}.png", png(image), "A") for i, image in enumerate(data.a)]
    files += [(f"b-{i:05d}.png", png(image), "B") for i, image in enumerate(data.b)]
    truth = {hashlib.sha256(blob).hexdigest(): choice[domain] for _, blob, domain in files}

    calibration_files = [f for f in files if f[2] == "A"][:CALIBRATION_PER_DOMAIN] + [f for f in files if f[2] == "B"][:CALIBRATION_PER_DOMAIN]
    production_files = [f for f in files if f not in calibration_files]
    cal = api.call("POST", f"projects/{project['id']}/batches/", json={"name": "calibration", "kind": "calibration"})
    upload(api, cal["id"], [(n, b) for n, b, _ in calibration_files])
    api.call("POST", f"batches/{cal['id']}/finalize/")
    label_everything(annotator, project["id"], truth)
    cal_tasks = api.call("GET", f"tasks/?batch={cal['id']}&page_size=1000")["results"]
    for task in cal_tasks:
        api.call("POST", f"tasks/{task['id']}/gold/", json={"choice": truth[task['asset']['sha256']]})
    api.call("POST", f"projects/{project['id']}/approve-calibration/")

    prod = api.call("POST", f"projects/{project['id']}/batches/", json={"name": "production-1", "kind": "production"})
    upload(api, prod["id"], [(n, b) for n, b, _ in production_files])
    api.call("POST", f"batches/{prod['id']}/finalize/")
    answered = label_everything(annotator, project["id"], truth)
    truth_by_task = {}
    cursor = f"tasks/?batch={prod['id']}&page_size=1000"
    while cursor:
        page = api.call("GET", cursor)
        truth_by_task.update({t["id"]: truth[t["asset"]["sha256"]] for t in page["results"]})
        cursor = page["next"].split("/api/v1/", 1)[1] if page.get("next") else ""
    # Calibration batches are reviewed by the owner, not audited, and only accepted batches feed a split.
    status, audited = audit(api, project["id"], prod["id"], truth_by_task, min(AUDIT_MAX, len(truth_by_task)))
    if status != "accepted":
        raise SystemExit(f"the audit left the production batch {status}, not accepted")
    print(f"labeled {answered} production tasks, audited {audited}, accepted, in {time.monotonic() - t0:.0f} s", flush=True)

    split = api.call("POST", f"projects/{project['id']}/splits/", json={"val_fraction": 0, "test_fraction": 0})
    split = api.call("POST", f"splits/{split['id']}/approve/")
    print(f"split v{split['version']}: {json.dumps(split.get('counts', {}))}", flush=True)

    run = api.call("POST", "runs/", json={"split": split["id"], "config": {**config, "time_limit_s": minutes * 60}})
    print(f"run {run['id']}: training {data.size}x{data.size} for up to {minutes:g} min", flush=True)
    run = wait(api, f"runs/{run['id']}/", {"succeeded", "failed", "cancelled"}, 15,
               lambda r: f"{r['status']} step {r['step']}/{r['total_steps']} "
                         f"{(r['images_per_s'] or 0):.2f} images/s")
    if run["status"] != "succeeded":
        raise SystemExit(f"run {run['id']} {run['status']}: {run['error']}")

    evaluation = api.call("POST", "evaluations/", json={"run": run["id"], "metrics": ["known_mapping"],
                                                        "known_mapping": data.params()})
    evaluation = wait(api, f"evaluations/{evaluation['id']}/", {"succeeded", "failed"}, 3,
                      lambda e: f"evaluation {e['status']} {e['progress'] * 100:.0f}%")
    if evaluation["status"] != "succeeded":
        raise SystemExit(f"evaluation failed: {evaluation['error']}")
    return {"run": run, "evaluation": evaluation}


def wall_s(run: dict[str, Any]) -> float:
    if not (run.get("started_at") and run.get("finished_at")):
        return 0.0
    started, finished = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def report(run: dict[str, Any], evaluation: dict[str, Any]) -> bool:
    known = evaluation["results"]["known_mapping"]
    rows = [(f"CycleGAN run {run['id']} (step {evaluation['step']})", known)]
    rows += [(name.replace("_", " "), scores) for name, scores in known["baselines"].items()]
    print(f"\n{'':<36}{'PSNR A→B':>10}{'SSIM A→B':>10}{'PSNR B→A':>10}{'SSIM B→A':>10}")
    for name, scores in rows:
        print(f"{name:<36}" + "".join(f"{float(scores[d][m]):>10.3f}" for d in ("AB", "BA") for m in ("psnr", "ssim")))
    beats = all(float(known["AB"][m]) > float(b["AB"][m]) for b in known["baselines"].values() for m in ("psnr", "ssim"))
    print(f"\nA→B beats both baselines on PSNR and SSIM: {'yes' if beats else 'no'} "
          f"({known['AB']['n']} held-out pairs; {run['step']} steps at {run['config']['image_size']}², "
          f"{wall_s(run):.0f} s from start to finish, {(run['images_per_s'] or 0):.2f} images/s)")
    return beats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="URL of a running Winnow (default: start one here)")
    parser.add_argument("--token", help="an owner's API token for --base (the owner also audits)")
    parser.add_argument("--annotator", help="username of a second user for --base, who labels")
    parser.add_argument("--annotator-token", help="that user's API token")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=200, help="training images per domain")
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="winnow_bench_quality",
                        help="throwaway database (dropped and recreated) when no --base is given; one per concurrent run")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis database of the broker when no --base is given")
    parser.add_argument("--minutes", type=float, default=10, help="training time limit")
    parser.add_argument("--config", default="{}",
                        help="JSON overrides of the run config, e.g. '{\"ngf\": 32}'; '{\"residual\": false, \"ngf\": 64, "
                             "\"ndf\": 64, \"n_blocks\": 6, \"n_layers_d\": 3, \"lambda_identity\": 0.5, \"load_size\": null}' is the paper's")
    args = parser.parse_args()
    remote = (args.base, args.token, args.annotator, args.annotator_token)
    if any(remote) and not all(remote):
        parser.error("--base, --token, --annotator and --annotator-token go together")

    data = make_known_mapping(size=args.size, n_a=args.n, n_b=args.n, n_test=args.n_test, seed=args.seed)
    print(f"known-mapping set: {len(data.a)} A, {len(data.b)} B, {len(data.test_a)} held-out pairs of "
          f"{args.size}x{args.size} from {len(data.photos)} photographs", flush=True)
    # No resize jitter (load_size = size): the crops are already random in position and scale.
    config = {"image_size": args.size, "load_size": args.size, "epochs": 10_000, "decay_epochs": 0, "log_every": 50,
              "sample_every": 500, "checkpoint_every": 1000, **DEFAULT_MODEL, **json.loads(args.config)}

    with ExitStack() as stack:
        if args.base:
            api = Winnow(args.base, args.token)
            annotator, annotator_name = Winnow(args.base, args.annotator_token), args.annotator
        else:
            server = stack.enter_context(BenchServer(db=args.db, broker=f"redis://127.0.0.1:6379/{args.redis_db}"))
            subprocess.run([sys.executable, "-m", "celery", "-A", "winnow", "purge", "-f"], cwd=REPO, env=server.env,
                           check=True, capture_output=True)
            log = Path(tempfile.mkdtemp(prefix="winnow-bench-worker-")) / "worker.log"
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "winnow", "worker", "-P", "solo", "-Q", "default,gpu",
                 "--without-gossip", "--without-mingle", "-l", "warning", "-n", f"bench-quality-{os.getpid()}@%h"],
                cwd=REPO, env={**server.env, "WINNOW_TRAINING_DATA_WORKERS": "0"},
                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
            stack.callback(lambda: (worker.terminate(), worker.wait(60)))
            api = Winnow(server.url, server.create_user("alice"))
            annotator, annotator_name = Winnow(server.url, server.create_user("bob")), "bob"
        outcome = push_and_train(api, annotator, annotator_name, data, args.minutes, config)
    beats = report(outcome["run"], outcome["evaluation"])
    sys.exit(0 if beats else 1)


if __name__ == "__main__":
    main()
