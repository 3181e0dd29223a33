"""The rough edges an owner's walk found, held fixed in Chromium: hints never cover the next choice,
the review page counts what is left, the annotate page's batch counts move, a split without test
images warns, and the paper's run is not started on a CPU-only install without asking."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from labeling import answers, leasing, quality
from labeling.models import Split
from training.models import Run

pytestmark = pytest.mark.browser


def boxes_overlap(a, b):
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def label_all(project, annotator, labels):
    choices = [project.choices.get(label=label).pk for label in labels]
    i = 0
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choices[i % len(choices)], duration_ms=5)
        i += 1


@pytest.mark.parametrize("width", [1280, 800])
def test_a_long_hint_never_covers_the_next_choice(page, live_server, login, project, make_batch, width):
    make_batch(project, 1)
    page.set_viewport_size({"width": width, "height": 800})
    login(page, "bob")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    expect(page.locator("#annotate")).to_have_attribute("data-state", "ready")
    buttons = page.locator("#choices button.choice")
    for i in range(buttons.count()):
        buttons.nth(i).hover()
        tip = page.locator("#choices [role=tooltip]").nth(i)
        expect(tip).to_be_visible()
        tip_box = tip.bounding_box()
        for j in range(buttons.count()):
            assert not boxes_overlap(tip_box, buttons.nth(j).bounding_box()), (i, j)


def test_the_review_page_counts_the_image_on_screen(page, live_server, login, project, bob, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 8, kind="production", seed=5000)
    label_all(project, bob, ["Anime"])
    batch.refresh_from_db()
    quality.draw_audit_sample(batch=batch, size=8, seed=4)
    login(page, "carol")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    expect(page.locator("#queue-size")).to_have_text("8 left to review")
    page.keyboard.press("Enter")
    expect(page.locator("#queue-size")).to_have_text("7 left to review")


def test_the_annotate_page_moves_the_batch_counts_with_each_answer(page, live_server, login, project, make_batch):
    make_batch(project, 4, name="week-1")
    login(page, "bob")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    root = page.locator("#annotate")
    expect(page.locator("#batch-progress")).to_have_text("Batch week-1: 0 done, 4 remaining")
    for done in (1, 2):
        current = root.get_attribute("data-task-id")
        page.keyboard.press("1")
        page.wait_for_function("t => document.getElementById('annotate').dataset.taskId !== t", arg=current)
        expect(page.locator("#my-count")).to_have_text(str(done))
        expect(page.locator("#batch-progress")).to_have_text(f"Batch week-1: {done} done, {4 - done} remaining")


def accepted_project(project, bob, carol, make_batch, n=6):
    project.gold_rate = 0
    project.max_error_rate = 0.9
    project.save()
    batch = make_batch(project, n, kind="production", seed=5100)
    label_all(project, bob, ["Photorealistic", "Anime"])
    batch.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=batch, size=1, seed=1)
    quality.submit_audit(task=audits[0].task, reviewer=carol, correct=True, choice_id=None)


def test_a_split_without_test_images_is_built_with_a_warning(page, live_server, login, project, bob, carol, make_batch):
    accepted_project(project, bob, carol, make_batch)
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/training/")
    page.get_by_label("Test share").fill("0")
    page.get_by_role("button", name="Build split").click()
    warning = page.locator("#split-warnings")
    expect(warning).to_contain_text("Split v1 was built, but:")
    expect(warning).to_contain_text("no test images of domain A")
    expect(page.locator("#splits .warn-count")).to_have_text(re.compile(r"^\d warnings$"))
    assert Split.objects.get(project=project).counts["A"]["test"] == 0


def test_the_papers_run_is_not_started_on_a_cpu_only_install_without_asking(page, live_server, login, project, alice, bob,
                                                                              carol, make_batch, settings):
    from labeling import splits

    settings.WINNOW_TRAINING_QUEUE = "default"
    accepted_project(project, bob, carol, make_batch, n=24)
    splits.approve_split(split=splits.build_split(project=project, created_by=alice), approved_by=alice)
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/training/")
    expect(page.locator("#run-estimate")).to_contain_text(re.compile(r"Roughly .* 200 epochs of \d+ images at 256×256 \(a typical CPU's speed"))
    page.get_by_role("button", name="Start training").click()
    ask = page.get_by_role("alertdialog")
    expect(ask).to_contain_text("Empty fields start the paper's 256×256, 200-epoch run")
    expect(ask).to_contain_text("on this CPU-only install")
    assert not Run.objects.exists()
    page.get_by_role("button", name="Use the CPU preset").click()
    expect(page.get_by_label("Image size (multiple of 4)")).to_have_value("64")
    expect(page.locator("#run-estimate")).to_contain_text("10 epochs")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get()
    assert (run.config["image_size"], run.config["epochs"], run.config["decay_epochs"], run.config["ngf"]) == (64, 5, 5, 32)
