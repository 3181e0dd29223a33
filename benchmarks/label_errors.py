"""Likely label errors: does the check point reviewers at the wrong answers, and do they catch them?

A planted pile of three kinds with known truth (the model-assisted cleaning benchmark's generator,
labeling/demo.py via benchmarks/assisted.py) is ingested into a throwaway database on the machine's
PostgreSQL; the embedding job trains its feature model on the images (before any production answer, as
after an upload) and embeds them; 60 calibration images become gold. Simulated annotators, each with their
own error rate between 3% and 8%, label the production batch through the answer path:

* overlap 1: six annotators, one answer per task (confident learning);
* overlap 3: eight annotators, three answers per task and majority consensus (CROWDLAB); the same images
  and embeddings.

Then the likely-error check runs (labeling/label_errors.py, in this process) and the script prints the
precision and recall of the lowest-scored tasks at the top 1%, 2% and 5% and of cleanlab's flags, the
estimated number of wrong answers beside the true number, how many wrong answers a review of the top 200
of the likely-errors queue finds (the reviewer answers with the truth, through label_errors.submit_review)
against a random sample of 200, the error rate of the exported labels (labeling/formats.task_rows) before
and after that review, and the Spearman correlation of the annotators' scores with their true accuracy.

Targets: the top-200 review finds at least 5x the errors a random 200 finds (on average: 200 x the error
rate); after it the export's error rate is at most half of before; annotator scores rank the annotators
(Spearman >= 0.8), at both overlaps. Exit 1 when one is missed.

    nice -n 10 .venv/bin/python benchmarks/label_errors.py [--production 3000] [--seed 7]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REVIEW = 200
GOLD = 60
RATES = {1: np.linspace(0.03, 0.08, 6), 3: np.linspace(0.03, 0.08, 8)}


def setup_django(db: str) -> None:
    import psycopg2

    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    conn = psycopg2.connect(f"{base}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{db}"')
        cursor.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    os.environ.update({
        "DATABASE_URL": f"{base}/{db}", "DJANGO_SETTINGS_MODULE": "winnow.settings",
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="winnow-bench-errors-"), "WINNOW_ASSIST": "0",
        "WINNOW_LABEL_ERRORS": "0", "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "WINNOW_FEATURE_THREADS": os.environ.get("WINNOW_FEATURE_THREADS", "2"),
    })
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_project(alice: Any, name: str, overlap: int, annotators: list[str]) -> Any:
    from benchmarks.assisted import CHOICES
    from labeling import projects

    project = projects.create_project(created_by=alice, fields={"name": name, "overlap": overlap, "gold_rate": 0,
                                                                "trap_rate": 0}, choices=CHOICES)
    for username in annotators:
        projects.add_member(project=project, username=username, role="annotator")
    projects.add_member(project=project, username="carol", role="reviewer")
    return project


def ingest(project: Any, alice: Any, name: str, kind: str, files: list[tuple[str, bytes, str]]) -> Any:
    from labeling import ingest as ingesting
    from labeling import projects

    batch = projects.create_batch(project=project, name=name, kind=kind, created_by=alice)
    for start in range(0, len(files), 200):
        ingesting.ingest_files(batch=batch, files=[(n, io.BytesIO(b)) for n, b, _ in files[start : start + 200]])
    projects.finalize_batch(batch=batch)
    return batch


def label(project: Any, users: dict[str, Any], rates: dict[str, float], truth: dict[str, str],
          choice: dict[str, int], rng: np.random.Generator) -> None:
    """Every annotator in turn takes up to 25 tasks and answers them, wrong at their own rate."""
    from benchmarks.assisted import LABEL
    from labeling import answers, leasing

    kinds = list(LABEL)
    while True:
        given = 0
        for username, rate in rates.items():
            for task in leasing.lease_tasks(project=project, annotator=users[username], count=25):
                kind = truth[task.source_name]
                if rng.random() < rate:
                    kind = rng.choice([k for k in kinds if k != kind])
                answers.submit_annotation(task=task, annotator=users[username], choice_id=choice[LABEL[kind]],
                                          duration_ms=800)
                given += 1
        if not given:
            return


def exported_error_rate(project: Any, batch: Any, truth: dict[str, str]) -> tuple[int, int]:
    """(wrong, total) answers of the batch's export rows."""
    from benchmarks.assisted import LABEL
    from labeling import formats

    wrong = total = 0
    for row in formats.task_rows(project=project, base_url="http://bench", batch_id=batch.pk):
        if row["status"] != "completed" or row["is_gold"]:
            continue
        total += 1
        wrong += row["answer"] != LABEL[truth[row["image"]["source_name"]]]
    return wrong, total


def evaluate(project: Any, batch: Any, truth: dict[str, str], users: dict[str, Any], rates: dict[str, float],
             choice: dict[str, int], seed: int) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from benchmarks.assisted import LABEL
    from labeling import label_errors
    from labeling.models import Annotation, AnnotatorQuality, LabelCheck, LabelQuality, Task

    started = time.monotonic()
    check, _ = label_errors.schedule_check(project=project)
    label_errors.run_check(check_id=check.pk)
    check = LabelCheck.objects.get(pk=check.pk)
    seconds = time.monotonic() - started
    if check.status != "done":
        raise SystemExit(f"the check failed: {check.error}")
    name_of = dict(Task.objects.filter(batch=batch).values_list("id", "source_name"))
    right = {t: choice[LABEL[truth[n]]] for t, n in name_of.items()}
    rows = list(LabelQuality.objects.filter(batch=batch).order_by("score", "task_id")
                .values_list("task_id", "answer_id", "likely_error"))
    wrong = np.array([answer != right[t] for t, answer, _ in rows])
    flags = np.array([f for *_, f in rows])
    errors = int(wrong.sum())
    out: dict[str, Any] = {"scored": len(rows), "errors": errors, "method": check.method,
                           "estimate": check.estimated_errors, "estimate_method": check.estimate_method,
                           "check_seconds": seconds, "heldout": (check.heldout_correct, check.heldout), "at": {}}
    for share in (0.01, 0.02, 0.05):
        k = max(1, round(share * len(rows)))
        hits = int(wrong[:k].sum())
        out["at"][share] = (k, hits / k, hits / errors if errors else None)
    tp = int((flags & wrong).sum())
    out["flags"] = (int(flags.sum()), tp / flags.sum() if flags.sum() else None, tp / errors if errors else None)
    before = exported_error_rate(project, batch, truth)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(rows), size=min(REVIEW, len(rows)), replace=False)
    out["random_found"] = int(wrong[sample].sum())
    out["random_expected"] = REVIEW * errors / len(rows)
    carol = users["carol"]
    found = reviewed = 0
    for q in label_errors.likely_errors(project=project, reviewer=carol, batch=batch, limit=REVIEW):
        truth_choice = right[q.task_id]
        review = label_errors.submit_review(task=q.task, reviewer=carol, correct=q.answer_id == truth_choice,
                                            choice_id=truth_choice)
        reviewed += 1
        found += review.verdict == "incorrect"
    out["review"] = (reviewed, found)
    out["export_before"], out["export_after"] = before, exported_error_rate(project, batch, truth)
    accuracy = {}
    for username in rates:
        given = list(Annotation.objects.live().filter(task__batch=batch, annotator=users[username])
                     .values_list("task_id", "choice_id"))
        accuracy[username] = np.mean([c == right[t] for t, c in given])
    name_of_user = {u.pk: n for n, u in users.items()}
    scores = {name_of_user[a]: q for a, q in AnnotatorQuality.objects.filter(check_run=check)
              .values_list("annotator_id", "quality")}
    names = sorted(rates)
    out["annotators"] = [(n, rates[n], accuracy[n], scores.get(n)) for n in names]
    out["spearman"] = float(spearmanr([accuracy[n] for n in names], [scores.get(n, 0) for n in names]).statistic)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--production", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", default="winnow_bench_label_errors")
    args = parser.parse_args()
    setup_django(args.db)

    from django.contrib.auth import get_user_model

    from benchmarks.assisted import LABEL, pile
    from labeling import answers, features, leasing, projects, quality, vectors
    from labeling.models import BatchKind

    User = get_user_model()
    names = ["alice", "carol", *[f"annotator{i}" for i in range(8)]]
    users = {n: User.objects.create_user(username=n, password="x") for n in names}
    rng = np.random.default_rng(args.seed)
    calibration_files = pile(GOLD, seed=args.seed * 100_000)
    production_files = pile(args.production, seed=args.seed * 100_000 + GOLD)
    truth = {n: k for n, _, k in calibration_files + production_files}
    results: dict[int, dict[str, Any]] = {}
    first_project = None
    for overlap in (1, 3):
        rates = {f"annotator{i}": float(r) for i, r in enumerate(RATES[overlap])}
        project = make_project(users["alice"], f"errors overlap {overlap}", overlap, list(rates))
        choice = dict(project.choices.values_list("label", "id"))
        calibration = ingest(project, users["alice"], "calibration", BatchKind.CALIBRATION, calibration_files)
        for who in [f"annotator{i}" for i in range(overlap)]:  # the calibration batch, answered right
            for task in leasing.lease_tasks(project=project, annotator=users[who], count=GOLD):
                answers.submit_annotation(task=task, annotator=users[who],
                                          choice_id=choice[LABEL[truth[task.source_name]]], duration_ms=800)
        for task in calibration.tasks.all():
            quality.set_gold(task=task, choice_id=choice[LABEL[truth[task.source_name]]])
        projects.approve_calibration(project=project)
        batch = ingest(project, users["alice"], "production", BatchKind.PRODUCTION, production_files)
        started = time.monotonic()
        if first_project is None:
            job = features.schedule(project_id=project.pk, countdown=0)
            features.run_feature_job(job_id=job.pk)
            first_project = project
            print(f"embedding job: {args.production + GOLD} images in {time.monotonic() - started:.0f} s")
        else:  # the same images: the feature model learned from the images alone, so reuse its embeddings
            ids, matrix = features.embedding_matrix(first_project.pk)
            vectors.write(project_id=project.pk, version=1, asset_ids=ids, matrix=matrix)
        started = time.monotonic()
        label(project, users, rates, truth, choice, rng)
        print(f"overlap {overlap}: labeled in {time.monotonic() - started:.0f} s")
        results[overlap] = evaluate(project, batch, truth, users, rates, choice, args.seed)
    return report(results)


def report(results: dict[int, dict[str, Any]]) -> int:
    ok = True
    for overlap, r in results.items():
        print(f"\n== overlap {overlap} ({r['method']}): {r['scored']} tasks scored, {r['errors']} wrong answers "
              f"({r['errors'] / r['scored']:.2%}); check {r['check_seconds']:.1f} s; "
              f"held-out gold {r['heldout'][0]}/{r['heldout'][1]}")
        print(f"estimate: {r['estimate']:.1f} wrong answers ({r['estimate_method']}); true {r['errors']}")
        for share, (k, precision, recall) in r["at"].items():
            print(f"top {share:.0%} ({k} tasks): precision {precision:.2f}, recall {recall:.2f}")
        n, precision, recall = r["flags"]
        print(f"flagged by cleanlab: {n} tasks, precision {precision or 0:.2f}, recall {recall or 0:.2f}")
        reviewed, found = r["review"]
        ratio = found / r["random_expected"] if r["random_expected"] else float("inf")
        print(f"review of the top {reviewed}: {found} wrong answers found; a random {REVIEW}: {r['random_found']} "
              f"found (expected {r['random_expected']:.1f}); {ratio:.1f}x")
        (wb, tb), (wa, ta) = r["export_before"], r["export_after"]
        print(f"exported labels' error rate: {wb / tb:.2%} before the review, {wa / ta:.2%} after")
        for name, rate, accuracy, score in r["annotators"]:
            print(f"  {name}: planted error {rate:.1%}, true accuracy {accuracy:.3f}, score "
                  f"{'-' if score is None else f'{score:.3f}'}")
        print(f"annotator scores vs true accuracy: Spearman {r['spearman']:.2f}")
        checks = [(ratio >= 5, "the top-200 review finds at least 5x a random 200's errors"),
                  (wa / ta <= 0.5 * wb / tb, "the review at least halves the export's error rate"),
                  (r["spearman"] >= 0.8, "annotator scores rank the annotators (Spearman >= 0.8)")]
        for passed, what in checks:
            print(f"{'PASS' if passed else 'MISS'} overlap {overlap}: {what}")
            ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
