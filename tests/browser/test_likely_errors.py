"""The likely-errors queue in Chromium: a reviewer sees the lowest label quality first and corrects it with a key."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import label_errors
from labeling.models import Audit, DecidedBy, ErrorReview, LabelQuality, Task

from ..labeling.label_error_data import labeled_pile

pytestmark = pytest.mark.browser


def test_a_reviewer_corrects_the_lowest_scored_answer_with_a_key(page, live_server, login, project, bob, make_batch):
    pile = labeled_pile(project, make_batch, [bob], n=30, wrong={4, 17})
    check, _ = label_errors.schedule_check(project=project)
    label_errors.run_check(check_id=check.pk)
    lowest = LabelQuality.objects.order_by("score", "task_id").first()
    assert lowest.task_id in pile["wrong_ids"]
    login(page, "carol")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.get_by_label("Likely errors").check()
    root = page.locator("#review")
    expect(root).to_have_attribute("data-task", str(lowest.task_id))
    expect(page.locator("#errors-note")).to_contain_text("the audit's sample stays random")
    expect(page.locator("#given-answer")).to_have_text(lowest.answer.label)
    right = pile["choices"][pile["truth"][lowest.task_id]]
    expect(page.locator("#suggested-answer")).to_have_text(right.label)
    page.locator("#confirm").focus()
    page.keyboard.press(right.hotkey)
    page.wait_for_function("prev => document.getElementById('review').dataset.task !== prev", arg=str(lowest.task_id))
    expect(page.locator("#reviewed-count")).to_have_text("1")
    task = Task.objects.get(pk=lowest.task_id)
    assert (task.final_choice_id, task.decided_by) == (right.pk, DecidedBy.AUDIT)
    assert ErrorReview.objects.get(task=task).verdict == "incorrect"
    assert not Audit.objects.exists()
    # The next one shown is the next lowest score.
    second = LabelQuality.objects.exclude(task=task).order_by("score", "task_id").first()
    expect(root).to_have_attribute("data-task", str(second.task_id))
