"""The training pages in Chromium: build and approve a split, start a run, follow a run, translate."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from labeling.models import Split, SplitStatus
from training.models import Run, RunStatus

pytestmark = pytest.mark.browser


def test_an_owner_follows_a_finished_run_and_translates_an_image(page: Any, live_server: Any, login: Any,
                                                                 trained_run: Run, tmp_path: Any) -> None:
    login(page, "alice")
    page.goto(f"{live_server.url}/runs/{trained_run.pk}/")
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#progress-text")).to_contain_text("step 10 / 10 (100%)")
    expect(page.locator("#chart-g svg polyline")).to_have_count(6)  # G_A, G_B, cycle and identity terms
    expect(page.locator("#chart-d svg polyline")).to_have_count(2)
    expect(page.locator("#checkpoints tbody tr")).to_have_count(5)
    expect(page.get_by_role("link", name="Download generators")).to_have_count(3)  # the kept ones
    page.wait_for_function("() => document.getElementById('sample').naturalWidth === 6 * 32")
    expect(page.locator("#cancel")).to_be_hidden()

    path = tmp_path / "photo.png"
    array = np.random.default_rng(3).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    page.set_input_files("#t-image", str(path))
    page.select_option("#t-direction", "BA")
    page.get_by_role("button", name="Translate").click()
    expect(page.locator("#translate-result")).to_be_visible()
    expect(page.locator("#t-output-caption")).to_contain_text("B → A with the checkpoint of step 10")
    page.wait_for_function("() => document.getElementById('t-output').naturalWidth === 50")


def test_an_annotator_sees_the_run_but_none_of_the_owner_controls(page: Any, live_server: Any, login: Any,
                                                                 trained_run: Run) -> None:
    login(page, "bob")
    page.goto(f"{live_server.url}/runs/{trained_run.pk}/")
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#translate")).to_have_count(0)
    expect(page.get_by_text("owners only").first).to_be_visible()


def test_an_owner_builds_approves_and_trains_a_split_then_cancels_the_queued_run(
    page: Any, live_server: Any, login: Any, project: Any, accepted_batch: Any, settings: Any
) -> None:
    settings.WINNOW_TRAINING_QUEUE = "gpu-page-test"  # no worker listens: the run stays queued
    accepted_batch(project, "AAAABBBB-")
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/training/")
    page.fill("#s-val_fraction", "0")
    page.fill("#s-test_fraction", "0")
    page.get_by_role("button", name="Build split").click()
    expect(page.locator("#splits tbody tr")).to_have_count(1)
    expect(page.locator("#splits tbody tr").first).to_contain_text("4 / 0 / 0")
    page.get_by_role("button", name="Approve split v1").click()
    expect(page.locator("#splits tbody .badge")).to_have_text("approved")
    assert Split.objects.get(project=project).status == SplitStatus.APPROVED

    page.fill("#r-image_size", "30")  # not a multiple of 4
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#run-errors")).to_contain_text("multiple of 4")
    assert not Run.objects.exists()

    page.get_by_role("button", name="Paper's defaults").click()  # the paper recipe, every field empty
    expect(page.locator("#r-recipe")).to_have_value("")
    page.select_option("#r-recipe", "small-data")
    page.get_by_role("button", name="CPU preset").click()  # a size preset keeps the recipe chosen
    expect(page.locator("#r-image_size")).to_have_value("64")
    expect(page.locator("#r-recipe")).to_have_value("small-data")
    page.fill("#r-image_size", "32")
    page.fill("#r-epochs", "1")
    page.fill("#r-decay_epochs", "1")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    run = Run.objects.get()
    assert run.config["image_size"] == 32 and run.config["ngf"] == 32 and run.status == RunStatus.QUEUED
    # The recipe chosen in the form, resolved: its knobs are stated in the saved config.
    assert run.config["recipe"] == "small-data" and run.config["residual"] is True
    assert run.config["lambda_identity"] == 0.1 and run.config["self_ensemble"] == 8
    expect(page.locator("#status")).to_have_text("queued")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Resume from last checkpoint")).to_be_visible()
    assert Run.objects.get().status == RunStatus.CANCELLED
