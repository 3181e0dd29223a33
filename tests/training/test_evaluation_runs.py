"""Evaluating runs: the API, the Celery job, FID with local Inception weights, comparison across runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.files.storage import default_storage

from labeling import splits
from labeling.models import Batch, Project, Split
from tests.conftest import wait_for
from training import evaluations, runs
from training.evaluation import fid
from training.models import Checkpoint, Evaluation, EvaluationStatus, Run, RunStatus
from winnow.jobs import JobBeat

from .conftest import TINY_CONFIG, noise_png

KNOWN_MAPPING = {"size": 32, "n_a": 6, "n_b": 6, "n_test": 4, "seed": 1}
CLASSIFIER = {"seeds": [0, 1], "epochs": 2}


@pytest.fixture
def test_split(project: Project, accepted_batch: Callable[..., Batch], alice: Any) -> Split:
    """An approved, imbalanced split (14 A, 9 B) with about a third of the images held out for testing."""
    accepted_batch(project, "A" * 14 + "B" * 9)
    split = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0.35)
    return splits.approve_split(split=split, approved_by=alice)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TINY_CONFIG training, done once per module with the torch-only trainer; tests copy its checkpoint."""
    from training.cyclegan.config import CycleGANConfig
    from training.cyclegan.data import Domains
    from training.cyclegan.train import train

    folder = tmp_path_factory.mktemp("tiny-run")
    paths = []
    for seed in range(4):
        paths.append(folder / f"{seed}.png")
        paths[-1].write_bytes(noise_png(seed))
    cfg = CycleGANConfig.from_dict({**TINY_CONFIG, "device": "cpu", "num_workers": 0})
    result = train(cfg, Domains(a=paths[:2], b=paths[2:]), folder / "out", lambda metrics: None, lambda: False)
    assert result.checkpoint is not None
    return Path(result.checkpoint)


def finished_run(split: Split, owner: Any, checkpoint: Path) -> Run:
    """A succeeded run of the split whose one checkpoint is a copy of `checkpoint`, as a worker leaves it."""
    step = int(checkpoint.stem.split("_")[-1])
    run = Run.objects.create(project=split.project, split=split, requested_by=owner, status=RunStatus.SUCCEEDED,
                             config=runs.resolve_config(TINY_CONFIG), step=step, total_steps=step)
    name = f"{run.storage_prefix}/checkpoints/{checkpoint.name}"
    target = runs.local_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, target)
    Checkpoint.objects.create(run=run, step=step, file=name, byte_size=target.stat().st_size)
    return run


@pytest.fixture
def run_to_evaluate(test_split: Split, alice: Any, tiny_checkpoint: Path) -> Run:
    return finished_run(test_split, alice, tiny_checkpoint)


def post(client: Any, **body: Any) -> Any:
    return client.post("/api/v1/evaluations/", body, format="json")


def test_the_fixture_split_holds_test_images_of_both_domains(test_split: Split) -> None:
    counts = {(d, p): len(splits.training_files(test_split, d, p)) for d in "AB" for p in ("train", "test")}
    assert min(counts.values()) >= 1 and counts[("B", "train")] >= 4, counts
    assert counts[("B", "train")] < counts[("A", "train")]


@pytest.mark.worker
def test_an_owner_queues_an_evaluation_and_the_worker_stores_its_numbers(
    celery_worker: Any, run_to_evaluate: Run, alice: Any, client_for: Callable
) -> None:
    response = post(client_for(alice), run=run_to_evaluate.pk, metrics=["known_mapping", "classifier"],
                    known_mapping=KNOWN_MAPPING, classifier=CLASSIFIER)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["step"] == run_to_evaluate.step
    evaluation = Evaluation.objects.get(pk=body["id"])
    assert evaluation.config["metrics"] == ["known_mapping", "classifier"]
    assert evaluation.config["known_mapping"]["filter"] == "cartoon"

    wait_for(lambda: Evaluation.objects.get(pk=evaluation.pk).status in {"succeeded", "failed"}, timeout=120,
             what="the evaluation to finish")
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.SUCCEEDED, evaluation.error
    assert evaluation.progress == 1.0 and evaluation.finished_at is not None
    known = evaluation.results["known_mapping"]
    for direction in ("AB", "BA"):
        assert known[direction]["n"] == 4 and 0 < known[direction]["ssim"] <= 1
        assert set(known["baselines"]) == {"identity", "colour_transfer"}
    classifier = evaluation.results["classifier"]
    assert classifier["minority"] == "B" and [s["seed"] for s in classifier["per_seed"]] == [0, 1]
    assert classifier["counts"]["synthetic"] == classifier["counts"]["real_A"] - classifier["counts"]["real_B"]

    detail = client_for(alice).get(f"/api/v1/evaluations/{evaluation.pk}/").json()
    assert detail["headline"]["psnr_AB"] == pytest.approx(known["AB"]["psnr"])
    listed = client_for(alice).get(f"/api/v1/evaluations/?run={run_to_evaluate.pk}").json()
    assert [e["id"] for e in listed["results"]] == [evaluation.pk]
    rows = client_for(alice).get(f"/api/v1/evaluations/compare/?project={run_to_evaluate.project_id}").json()
    assert rows[0]["run"] == run_to_evaluate.pk and rows[0]["evaluation"] == evaluation.pk
    assert rows[0]["metrics"]["ssim_BA"] == pytest.approx(known["BA"]["ssim"])


def test_fid_and_kid_use_the_configured_local_inception_weights(
    run_to_evaluate: Run, alice: Any, settings: Any, tmp_path: Path
) -> None:
    from pytorch_fid import inception as reference

    # The FID architecture with random weights: the numbers mean nothing, the wiring is what is tested.
    net = reference._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b, net.Mixed_7c = reference.FIDInceptionA(192, pool_features=32), reference.FIDInceptionE_2(2048)
    weights = tmp_path / fid.INCEPTION_FILE
    torch.save(net.state_dict(), weights)
    settings.WINNOW_INCEPTION_WEIGHTS = str(weights)

    evaluation = evaluations.start_evaluation(run=run_to_evaluate, config={"metrics": ["fid_kid"], "max_images": 3},
                                              requested_by=alice, enqueue=False)
    stages: list[str] = []
    done = evaluations.execute_evaluation(evaluation_id=evaluation.pk, on_progress=lambda s, f: stages.append(s))
    assert done is not None and done.status == EvaluationStatus.SUCCEEDED, done.error
    for direction in ("AB", "BA"):
        scores = done.results["fid_kid"][direction]
        assert scores["fid"] >= 0 and isinstance(scores["kid"], float) and scores["n_fake"] >= 2
    assert set(stages) == {"fid_kid"}
    # The defaults include FID once weights are configured.
    assert evaluations.resolve_config({}, run_to_evaluate)["metrics"] == ["fid_kid", "classifier"]


def test_fid_is_refused_clearly_without_inception_weights(run_to_evaluate: Run, alice: Any, client_for: Callable,
                                                         settings: Any) -> None:
    settings.WINNOW_INCEPTION_WEIGHTS = ""
    response = post(client_for(alice), run=run_to_evaluate.pk, metrics=["fid_kid"])
    assert response.status_code == 400
    assert "WINNOW_INCEPTION_WEIGHTS" in json.dumps(response.json())
    assert not Evaluation.objects.exists()
    # Without weights the defaults leave FID out rather than fail.
    assert evaluations.resolve_config({}, run_to_evaluate)["metrics"] == ["classifier"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metrics": ["known_mapping"]}, "give the data set's parameters"),
        ({"metrics": ["known_mapping"], "known_mapping": {"filter": "sketch"}}, "unknown filter"),
        ({"metrics": ["sharpness"]}, "is not a valid choice"),
        ({"classifier": {"seeds": []}}, "seeds"),
        ({"classifier": {"epochs": 0}}, "epochs"),
        ({"checkpoint": 999999}, "does not belong"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(run_to_evaluate: Run, alice: Any, client_for: Callable,
                                                    body: dict, message: str) -> None:
    response = post(client_for(alice), run=run_to_evaluate.pk, **body)
    assert response.status_code == 400, response.json()
    assert message in json.dumps(response.json())
    assert not Evaluation.objects.exists()


def test_a_run_without_a_checkpoint_cannot_be_evaluated(test_split: Split, alice: Any, client_for: Callable) -> None:
    run = Run.objects.create(project=test_split.project, split=test_split, requested_by=alice,
                             config=runs.resolve_config(TINY_CONFIG))
    response = post(client_for(alice), run=run.pk, metrics=["classifier"])
    assert response.status_code == 409 and "no checkpoint" in response.json()["detail"]
    assert not Evaluation.objects.exists()


def test_only_owners_evaluate_and_only_members_read(run_to_evaluate: Run, alice: Any, bob: Any, mallory: Any,
                                                    client_for: Callable) -> None:
    assert post(client_for(bob), run=run_to_evaluate.pk, metrics=["classifier"]).status_code == 403
    refused = post(client_for(mallory), run=run_to_evaluate.pk, metrics=["classifier"])
    assert refused.status_code == 400 and "run" in refused.json()["fields"]  # another project's run reads as unknown
    assert not Evaluation.objects.exists()
    evaluation = evaluations.start_evaluation(run=run_to_evaluate, config={"metrics": ["classifier"]},
                                              requested_by=alice, enqueue=False)
    assert client_for(bob).get(f"/api/v1/evaluations/{evaluation.pk}/").status_code == 200
    assert client_for(mallory).get(f"/api/v1/evaluations/{evaluation.pk}/").status_code == 404
    assert client_for(mallory).get("/api/v1/evaluations/").json()["results"] == []
    compare = f"/api/v1/evaluations/compare/?project={run_to_evaluate.project_id}"
    assert client_for(mallory).get(compare).status_code == 404
    assert client_for(alice).get("/api/v1/evaluations/compare/").status_code == 400


def test_a_split_without_test_images_skips_with_a_reason(approved_split: Split, alice: Any,
                                                         tiny_checkpoint: Path) -> None:
    run = finished_run(approved_split, alice, tiny_checkpoint)
    evaluation = evaluations.start_evaluation(run=run, config={"metrics": ["classifier"]}, requested_by=alice,
                                              enqueue=False)
    done = evaluations.execute_evaluation(evaluation_id=evaluation.pk)
    assert done is not None and done.status == EvaluationStatus.SUCCEEDED
    assert "test partition" in done.results["classifier"]["skipped"]


def test_a_missing_checkpoint_file_fails_the_evaluation_with_its_reason_and_a_rerun_is_a_no_op(
    run_to_evaluate: Run, alice: Any
) -> None:
    evaluation = evaluations.start_evaluation(run=run_to_evaluate, config={"metrics": ["classifier"]},
                                              requested_by=alice, enqueue=False)
    checkpoint = Checkpoint.objects.get(pk=evaluation.checkpoint_id)
    default_storage.delete(checkpoint.file.name)
    with pytest.raises(FileNotFoundError):
        evaluations.execute_evaluation(evaluation_id=evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.FAILED and "FileNotFoundError" in evaluation.error
    assert evaluations.execute_evaluation(evaluation_id=evaluation.pk) is None  # redelivered: not queued any more


def test_deleting_a_run_deletes_its_evaluations(run_to_evaluate: Run, alice: Any) -> None:
    evaluations.start_evaluation(run=run_to_evaluate, config={"metrics": ["classifier"]}, requested_by=alice,
                                 enqueue=False)
    run_to_evaluate.delete()
    assert not Evaluation.objects.exists() and not Checkpoint.objects.exists()


def test_deleting_a_run_deletes_its_augmentations(run_to_evaluate: Run, alice: Any) -> None:
    from training.models import Augmentation

    checkpoint = run_to_evaluate.checkpoints.order_by("-step").first()
    Augmentation.objects.create(run=run_to_evaluate, checkpoint=checkpoint, direction="AB", count=2,
                                requested_by=alice)
    run_to_evaluate.delete()
    assert not Augmentation.objects.exists() and not Checkpoint.objects.exists()


def _stale(evaluation: Evaluation, age_s: float) -> None:
    """The state a worker killed mid-evaluation leaves: running, its last beat `age_s` ago."""
    from django.utils import timezone

    Evaluation.objects.filter(pk=evaluation.pk).update(
        status=EvaluationStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=age_s), progress=0.5
    )


def test_an_evaluation_beats_while_it_computes(run_to_evaluate: Run, alice: Any, transactional_db: Any) -> None:
    evaluation = evaluations.start_evaluation(run=run_to_evaluate, requested_by=alice, enqueue=False,
                                              config={"metrics": ["known_mapping"], "known_mapping": KNOWN_MAPPING})
    _stale(evaluation, 3600)
    with JobBeat(Evaluation, evaluation.pk):
        wait_for(lambda: Evaluation.objects.get(pk=evaluation.pk).heartbeat_at > evaluation.created_at,
                 timeout=10, what="a heartbeat")
    assert not evaluations.recover_stale_evaluations()  # beating: not stale


def test_an_evaluation_whose_worker_died_is_requeued_and_finished(
    celery_worker: Any, run_to_evaluate: Run, alice: Any
) -> None:
    dead = evaluations.start_evaluation(run=run_to_evaluate, requested_by=alice, enqueue=False,
                                        config={"metrics": ["known_mapping"], "known_mapping": KNOWN_MAPPING})
    _stale(dead, 3600)
    # The live worker's sweep (every WINNOW_JOB_SWEEP_SECONDS) or this call, whichever comes first,
    # re-queues it once: each claim is a conditional update.
    assert evaluations.recover_stale_evaluations() in ([dead.pk], [])
    wait_for(lambda: Evaluation.objects.get(pk=dead.pk).status in {"succeeded", "failed"}, timeout=120,
             what="the re-queued evaluation")
    dead.refresh_from_db()
    assert dead.status == EvaluationStatus.SUCCEEDED, dead.error
    assert dead.results["known_mapping"]["AB"]["n"] == 4
