"""A suggested grid page in Chromium: every tile arrives selected with the machine's suggestion; one
unselected, one key answers the rest, and those answers are marked assisted."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Suggestion

from ..labeling.conftest import assist_now, planted  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


def test_a_suggested_page_is_answered_with_one_key_after_unselecting_one(page, live_server, login, planted, bob):  # noqa: F811
    pile = planted(gold=18, production=18)
    assist_now(pile["project"])
    project = pile["project"]
    login(page, "bob")
    page.goto(f"{live_server.url}/projects/{project.pk}/grid/?size=24")
    expect(page.locator("#grid-app")).to_have_attribute("data-state", "ready")
    page.get_by_role("button", name="Suggested page").click()
    expect(page.locator("#suggested-note")).to_contain_text("Every image is selected")
    tiles = page.get_by_role("option")
    count = tiles.count()
    assert count >= 2
    expect(page.locator('[role=option][aria-selected="true"]')).to_have_count(count)
    ids = [int(x) for x in tiles.evaluate_all("nodes => nodes.map(n => n.dataset.taskId)")]
    choice = Suggestion.objects.filter(task_id=ids[0]).values_list("choice_id", "choice__label", "choice__hotkey").get()
    assert set(Suggestion.objects.filter(task_id__in=ids).values_list("choice_id", flat=True)) == {choice[0]}
    expect(tiles.first.locator(".suggestion")).to_contain_text(choice[1])

    tiles.nth(1).click()  # not this one
    expect(page.locator("#selected-count")).to_have_text(f"{count - 1} selected")
    page.keyboard.press(choice[2])
    expect(page.get_by_role("status")).to_have_text(f"{count - 1} answered {choice[1]}.")
    answered = Annotation.objects.filter(annotator=bob, task__batch=pile["batch"])  # not his calibration answers
    assert sorted(answered.values_list("task_id", flat=True)) == sorted(ids[:1] + ids[2:])
    assert set(answered.values_list("assisted", "choice_id")) == {(True, choice[0])}
    expect(page.get_by_role("option")).to_have_count(1)  # the unselected one waits for its own answer
    assert int(page.get_by_role("option").first.get_attribute("data-task-id")) == ids[1]


def test_the_batches_page_asks_for_embeddings_once_per_click_after_batches_change(page, live_server, login, project):
    # The page reloads its table after each change; the embedding buttons must stay one listener each,
    # so a click is one request, not one per reload.
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    for name in ("first", "second"):
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_role("button", name="Create batch").click()
        expect(page.locator("#batch-table")).to_contain_text(name)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/assist/") else None)
    page.get_by_role("button", name="Compute embeddings now").click()
    expect(page.get_by_role("status")).to_contain_text("The embedding job is queued")
    page.wait_for_timeout(500)
    assert len(posts) == 1
