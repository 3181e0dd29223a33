"""The review page in Chromium: reviewers audit with the keyboard, owners review calibration answers."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import answers, leasing, quality
from labeling.models import Audit, Batch, Task

pytestmark = pytest.mark.browser


def label_all(project, annotator, label):
    choice = project.choices.get(label=label).pk
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choice, duration_ms=500)


def wait_for_next(page, current):
    page.wait_for_function("prev => document.getElementById('review').dataset.task !== prev", arg=current)


def test_a_reviewer_audits_a_sample_with_the_keyboard_and_the_batch_is_decided(
    page, live_server, login, project, bob, make_batch
):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 3, kind="production", seed=3000)
    label_all(project, bob, "Anime")
    batch.refresh_from_db()
    quality.draw_audit_sample(batch=batch, size=3, seed=11)
    login(page, "carol")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    root = page.locator("#review")
    expect(root).to_have_attribute("data-state", "ready")
    expect(page.locator("#given-answer")).to_have_text("Anime")
    first = root.get_attribute("data-task")
    page.keyboard.press("Enter")  # right
    wait_for_next(page, first)
    second = root.get_attribute("data-task")
    page.keyboard.press("3")  # wrong: it is Neither
    wait_for_next(page, second)
    third = root.get_attribute("data-task")
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-state", "empty")
    expect(page.locator("#reviewed-count")).to_have_text("3")
    verdicts = dict(Audit.objects.values_list("task_id", "verdict"))
    assert verdicts == {int(first): "correct", int(second): "incorrect", int(third): "correct"}
    assert Task.objects.get(pk=second).final_choice.label == "Neither"
    assert Batch.objects.get(pk=batch.pk).status == "rejected"  # 1 error in 3 is far above 2%


def test_an_owner_confirms_and_corrects_calibration_answers_then_approves(page, live_server, login, project, bob, make_batch):
    batch = make_batch(project, 2, kind="calibration", seed=3100)
    label_all(project, bob, "Photorealistic")
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.get_by_label("Calibration answers").check()
    root = page.locator("#review")
    expect(root).to_have_attribute("data-state", "ready")
    first = root.get_attribute("data-task")
    page.keyboard.press("Enter")
    wait_for_next(page, first)
    second = root.get_attribute("data-task")
    page.keyboard.press("2")
    expect(root).to_have_attribute("data-state", "empty")
    expect(page.locator("#calibration-summary")).to_contain_text("2 of 2 calibration tasks reviewed; answers 50% right")
    page.get_by_role("button", name="Approve calibration").click()
    expect(page.get_by_role("status")).to_contain_text("Calibration approved")
    gold = dict(Task.objects.filter(batch=batch).values_list("id", "gold_choice__label"))
    assert gold == {int(first): "Photorealistic", int(second): "Anime"}
    project.refresh_from_db()
    assert project.calibration_approved


def test_annotators_cannot_open_the_review_page(page, live_server, login, project):
    login(page, "bob")
    response = page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    assert response.status == 403
