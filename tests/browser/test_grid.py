"""Grid mode in Chromium: select look-alikes with the mouse or the keyboard, answer them all with one key."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Lease

pytestmark = pytest.mark.browser


def open_grid(page, live_server, login, project, size=24):
    login(page, "bob")
    page.goto(f"{live_server.url}/projects/{project.pk}/grid/?size={size}")
    root = page.locator("#grid-app")
    expect(root).to_have_attribute("data-state", "ready")
    return root


def tile_ids(page) -> list[int]:
    return [int(x) for x in page.locator(".thumb").evaluate_all("nodes => nodes.map(n => n.dataset.taskId)")]


def test_a_shift_click_selection_gets_one_answer_each_and_the_page_refills(page, live_server, login, project, bob,
                                                                            make_batch):
    make_batch(project, 30)
    root = open_grid(page, live_server, login, project, size=24)
    tiles = page.get_by_role("option")
    expect(tiles).to_have_count(24)
    before = tile_ids(page)
    tiles.nth(2).click()
    tiles.nth(6).click(modifiers=["Shift"])
    expect(page.locator("#selected-count")).to_have_text("5 selected")
    expect(page.locator('[role=option][aria-selected="true"]')).to_have_count(5)
    chosen = before[2:7]

    page.wait_for_timeout(50)  # some time to share among the five
    page.keyboard.press("2")
    expect(page.get_by_role("status")).to_have_text("5 answered Anime.")
    expect(root).to_have_attribute("data-busy", "0")
    expect(tiles).to_have_count(24)  # refilled from the queue
    after = tile_ids(page)
    assert not set(after) & set(chosen)
    assert len(set(after) - set(before)) == 5

    answers = Annotation.objects.live().filter(annotator=bob)
    assert sorted(answers.values_list("task_id", flat=True)) == sorted(chosen)
    assert {a.choice.label for a in answers} == {"Anime"}
    durations = {a.duration_ms for a in answers}
    assert len(durations) == 1 and durations.pop() > 0  # an equal share each
    assert Lease.objects.filter(annotator=bob, expires_at__gt=answers.first().created_at).count() == 24


def test_the_keyboard_alone_selects_and_answers(page, live_server, login, project, bob, make_batch):
    make_batch(project, 6)
    open_grid(page, live_server, login, project)
    ids = tile_ids(page)
    assert len(ids) == 6
    page.get_by_role("option").first.focus()
    page.keyboard.press("Space")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    page.keyboard.press("3")
    expect(page.get_by_role("status")).to_have_text("3 answered Neither.")
    expect(page.locator("#grid-app")).to_have_attribute("data-busy", "0")
    expect(page.get_by_role("option")).to_have_count(3)
    page.keyboard.press("Control+a")
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    page.keyboard.press("Escape")
    expect(page.locator("#selected-count")).to_have_text("0 selected")
    page.keyboard.press("1")
    expect(page.get_by_role("status")).to_contain_text("Select one or more images first")
    assert sorted(Annotation.objects.filter(annotator=bob).values_list("task_id", flat=True)) == ids[:3]
