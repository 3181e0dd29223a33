"""The evaluation card of the run page, in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from training import evaluations
from training.models import Evaluation, EvaluationStatus, Run

from .test_evaluation_runs import KNOWN_MAPPING, run_to_evaluate, test_split, tiny_checkpoint  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def test_an_owner_reads_the_numbers_compares_runs_and_queues_an_evaluation(
    page: Any, live_server: Any, login: Any, run_to_evaluate: Run, alice: Any, settings: Any  # noqa: F811
) -> None:
    done = evaluations.start_evaluation(
        run=run_to_evaluate, requested_by=alice, enqueue=False,
        config={"metrics": ["known_mapping", "classifier"], "known_mapping": KNOWN_MAPPING,
                "classifier": {"seeds": [0, 1], "epochs": 1}},
    )
    done = evaluations.execute_evaluation(evaluation_id=done.pk)
    assert done is not None and done.status == EvaluationStatus.SUCCEEDED
    psnr = f"{done.results['known_mapping']['AB']['psnr']:.4g}"

    login(page, "alice")
    page.goto(f"{live_server.url}/runs/{run_to_evaluate.pk}/")
    row = page.locator("#evaluations tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text(psnr)
    compared = page.locator("#compare-runs tbody tr")
    expect(compared).to_have_count(1)
    expect(compared).to_contain_text(f"Run {run_to_evaluate.pk}")
    expect(compared).to_contain_text(psnr)

    settings.WINNOW_INCEPTION_WEIGHTS = ""
    page.get_by_label("FID and KID").check()
    page.get_by_role("button", name="Evaluate the newest checkpoint").click()
    expect(page.locator("#evaluate-errors")).to_contain_text("WINNOW_INCEPTION_WEIGHTS")
    assert Evaluation.objects.count() == 1

    settings.WINNOW_TRAINING_QUEUE = "gpu-page-test"  # no worker listens: the evaluation stays queued
    page.get_by_label("FID and KID").uncheck()
    page.get_by_role("button", name="Evaluate the newest checkpoint").click()
    expect(row).to_have_count(2)
    expect(row.first).to_contain_text("queued")
    assert Evaluation.objects.filter(status=EvaluationStatus.QUEUED).count() == 1


def test_an_annotator_reads_evaluations_without_the_form(page: Any, live_server: Any, login: Any,
                                                        run_to_evaluate: Run) -> None:  # noqa: F811
    login(page, "bob")
    page.goto(f"{live_server.url}/runs/{run_to_evaluate.pk}/")
    expect(page.locator("#compare-runs tbody tr")).to_have_count(1)
    expect(page.locator("#compare-runs tbody tr")).to_contain_text("not evaluated")
    expect(page.locator("#evaluate")).to_have_count(0)
