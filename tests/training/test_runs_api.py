"""POST/GET /api/v1/runs/, cancel and resume, without a worker: what is refused and what is recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from labeling import splits
from labeling.models import Project, Split
from training.models import Run, RunStatus
from training.runs import recover_stale_runs

from .conftest import TINY_CONFIG

pytestmark = pytest.mark.django_db


def start(client: Any, split: Split, **config: Any) -> Any:
    return client.post("/api/v1/runs/", {"split": split.pk, "config": {**TINY_CONFIG, **config}}, format="json")


def test_an_owner_starts_a_run_with_the_papers_defaults_filled_in(approved_split: Split, alice: Any,
                                                                   client_for: Callable) -> None:
    response = client_for(alice).post("/api/v1/runs/", {"split": approved_split.pk, "config": {"image_size": 64}},
                                      format="json")
    assert response.status_code == 201, response.json()
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.status, run.split, run.project, run.requested_by) == ("queued", approved_split, approved_split.project, alice)
    assert run.config["image_size"] == 64 and run.config["load_size"] == 72 and run.config["n_blocks"] == 6
    assert (run.config["lambda_cycle"], run.config["lambda_identity"], run.config["pool_size"]) == (10.0, 0.5, 50)
    assert (run.config["lr"], run.config["beta1"], run.config["epochs"], run.config["decay_epochs"]) == (2e-4, 0.5, 100, 100)


def test_it_refuses_a_draft_split(project: Project, accepted_batch: Callable, alice: Any, client_for: Callable) -> None:
    accepted_batch(project, "AAAABBBB")
    draft = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0)
    response = start(client_for(alice), draft)
    assert response.status_code == 409
    assert response.json()["code"] == "split_not_approved" and "approve" in response.json()["detail"]
    assert not Run.objects.exists()


def test_it_refuses_a_domain_too_small_to_train(project: Project, accepted_batch: Callable, alice: Any,
                                               client_for: Callable) -> None:
    accepted_batch(project, "AAAAB")
    split = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0)
    splits.approve_split(split=split, approved_by=alice)
    response = start(client_for(alice), split)
    assert response.status_code == 400
    assert response.json()["code"] == "domain_too_small" and "domain B has 1 training images" in response.json()["detail"]
    assert not Run.objects.exists()


def test_a_batch_larger_than_a_domain_is_refused(approved_split: Split, alice: Any, client_for: Callable) -> None:
    response = start(client_for(alice), approved_split, batch_size=8)
    assert response.status_code == 400 and "domain A has 4 training images" in response.json()["detail"]


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"image_size": 30}, "image_size", "multiple of 4"),
        ({"image_size": 8}, "image_size", "greater than or equal to 16"),
        ({"epochs": -1}, "epochs", "greater than or equal to 0"),
        ({"epochs": 0, "decay_epochs": 0}, "non_field_errors", "at least 1"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"lr": 5}, "lr", "less than or equal to 0.1"),
        ({"lambda_cycle": -10}, "lambda_cycle", "greater than or equal to 0"),
        ({"n_blocks": 0}, "n_blocks", "greater than or equal to 1"),
        ({"ngf": "wide"}, "ngf", "valid integer"),
        ({"precision": "fp8"}, "precision", "not a valid choice"),
        ({"time_limit_s": 0}, "time_limit_s", "greater than 0"),
        ({"image_size": 64, "load_size": 32}, "load_size", "at least image_size"),
        ({"learning_rate": 0.1}, "learning_rate", "unknown config key"),
        ({"device": "cuda:3"}, "device", "unknown config key"),
        ({"recipe": "few-shot"}, "recipe", "not a valid choice"),
        ({"diffaug": "colour"}, "diffaug", "not a valid choice"),
        ({"r1_gamma": -1}, "r1_gamma", "greater than or equal to 0"),
        ({"lr_d_ratio": 0}, "lr_d_ratio", "greater than 0"),
        ({"ema_decay": 1}, "ema_decay", "less than or equal to 0.9999"),
        ({"ema_decay": "slow"}, "ema_decay", "valid number"),
        ({"colour_features": 40}, "colour_features", "less than or equal to 32"),
        ({"colour_features": 1.5}, "colour_features", "valid integer"),
        ({"self_ensemble": 3}, "self_ensemble", "1, 2, 4 or 8"),
        ({"colour_head": True, "residual": False}, "colour_head", "needs residual"),
    ],
)
def test_it_refuses_nonsense_config_values(approved_split: Split, alice: Any, client_for: Callable,
                                          config: dict, field: str, message: str) -> None:
    response = client_for(alice).post("/api/v1/runs/", {"split": approved_split.pk, "config": config}, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["fields"]["config"][field])
    assert not Run.objects.exists()


def test_the_api_takes_every_config_key_the_model_has(approved_split: Split, alice: Any, client_for: Callable) -> None:
    from training.cyclegan.config import CycleGANConfig
    from training.runs import WORKER_KEYS
    from training.serializers import RunConfigSerializer

    # All but how the worker runs it and the channel counts (Winnow's images are RGB).
    model_keys = set(CycleGANConfig.__dataclass_fields__) - set(WORKER_KEYS) - {"input_nc", "output_nc"}
    assert set(RunConfigSerializer().fields) == model_keys
    response = start(client_for(alice), approved_split, residual=True)
    assert response.status_code == 201, response.json()
    assert Run.objects.get(pk=response.json()["id"]).config["residual"] is True
    response = start(client_for(alice), approved_split, residual="sometimes")
    assert response.status_code == 400 and "residual" in response.json()["fields"]["config"]
    from training.cyclegan.config import PRECISIONS, UPSAMPLES

    api_fields = RunConfigSerializer().fields
    assert (tuple(api_fields["precision"].choices), tuple(api_fields["upsample"].choices)) == (PRECISIONS, UPSAMPLES)
    response = start(client_for(alice), approved_split, upsample="bilinear")
    assert response.status_code == 400 and "upsample" in response.json()["fields"]["config"]


def test_a_run_takes_the_small_data_recipe_and_stores_what_it_resolved_to(approved_split: Split, alice: Any,
                                                                         client_for: Callable) -> None:
    from training.cyclegan.config import RECIPES

    response = start(client_for(alice), approved_split, recipe="small-data", lambda_identity=0.5)
    assert response.status_code == 201, response.json()
    config = Run.objects.get(pk=response.json()["id"]).config
    assert config["recipe"] == "small-data" and config["lambda_identity"] == 0.5  # the explicit knob wins
    assert all(config[name] == value for name, value in RECIPES["small-data"].items() if name != "lambda_identity")


def test_a_config_must_be_an_object(approved_split: Split, alice: Any, client_for: Callable) -> None:
    response = client_for(alice).post("/api/v1/runs/", {"split": approved_split.pk, "config": [1]}, format="json")
    assert response.status_code == 400 and "must be an object" in str(response.json()["fields"]["config"])


def test_only_owners_start_runs_and_strangers_see_no_split(approved_split: Split, bob: Any, mallory: Any,
                                                          client_for: Callable) -> None:
    response = start(client_for(bob), approved_split)
    assert response.status_code == 403 and "owners" in response.json()["detail"]
    response = start(client_for(mallory), approved_split)
    assert response.status_code == 400 and "split" in response.json()["fields"]  # another project's split reads as unknown
    assert not Run.objects.exists()


def test_members_read_runs_and_strangers_are_refused(approved_split: Split, alice: Any, bob: Any, mallory: Any,
                                                     client_for: Callable) -> None:
    run_id = start(client_for(alice), approved_split).json()["id"]
    assert client_for(bob).get(f"/api/v1/runs/{run_id}/").status_code == 200
    assert [r["id"] for r in client_for(bob).get("/api/v1/runs/").json()["results"]] == [run_id]
    assert client_for(mallory).get(f"/api/v1/runs/{run_id}/").status_code == 404
    assert client_for(mallory).get(f"/api/v1/runs/{run_id}/metrics/").status_code == 404
    assert client_for(mallory).get("/api/v1/runs/").json()["results"] == []
    assert client_for(bob).post(f"/api/v1/runs/{run_id}/cancel/").status_code == 403
    assert client_for(mallory).post(f"/api/v1/runs/{run_id}/cancel/").status_code == 404
    assert Run.objects.get(pk=run_id).status == RunStatus.QUEUED


def test_cancelling_a_queued_run_cancels_it_at_once_and_resume_queues_it_again(
    approved_split: Split, alice: Any, client_for: Callable
) -> None:
    client = client_for(alice)
    run_id = start(client, approved_split).json()["id"]
    response = client.post(f"/api/v1/runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/runs/{run_id}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    resumed = client.post(f"/api/v1/runs/{run_id}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert client.post(f"/api/v1/runs/{run_id}/resume/").status_code == 409  # only cancelled or failed runs


def test_cancelling_a_running_run_asks_its_worker_to_stop(approved_split: Split, alice: Any, client_for: Callable) -> None:
    run_id = start(client_for(alice), approved_split).json()["id"]
    Run.objects.filter(pk=run_id).update(status=RunStatus.RUNNING)
    response = client_for(alice).post(f"/api/v1/runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert response.json()["cancel_requested_at"] is not None


def test_a_stale_running_run_is_requeued_and_a_fresh_one_left_alone(approved_split: Split, alice: Any,
                                                                    client_for: Callable) -> None:
    from datetime import timedelta

    from django.utils import timezone

    stale_id = start(client_for(alice), approved_split).json()["id"]
    fresh_id = start(client_for(alice), approved_split).json()["id"]
    cancelled_id = start(client_for(alice), approved_split).json()["id"]
    long_ago = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk__in=[stale_id, cancelled_id]).update(status=RunStatus.RUNNING, heartbeat_at=long_ago,
                                                               worker_token="dead")
    Run.objects.filter(pk=cancelled_id).update(cancel_requested_at=long_ago)
    Run.objects.filter(pk=fresh_id).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    assert recover_stale_runs() == [stale_id]
    assert Run.objects.get(pk=stale_id).status == RunStatus.QUEUED and Run.objects.get(pk=stale_id).worker_token == ""
    assert Run.objects.get(pk=fresh_id).status == RunStatus.RUNNING
    assert Run.objects.get(pk=cancelled_id).status == RunStatus.CANCELLED


def test_translate_and_augment_need_a_checkpoint(approved_split: Split, alice: Any, client_for: Callable) -> None:
    client = client_for(alice)
    run_id = start(client, approved_split).json()["id"]
    response = client.post(f"/api/v1/runs/{run_id}/augmentations/", {"count": 1}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "no_checkpoint"
    assert client.get(f"/api/v1/runs/{run_id}/weights/").status_code == 409
