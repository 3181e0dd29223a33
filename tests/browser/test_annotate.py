"""The annotator page in Chromium: keyboard labeling, hints, undo, skip, overlap across annotators."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Task, TaskStatus

pytestmark = pytest.mark.browser


def open_annotator(page, live_server, login, project, username="bob"):
    login(page, username)
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    return page.locator("#annotate")


def shown_task(root) -> str:
    expect(root).to_have_attribute("data-state", "ready")
    return root.get_attribute("data-task-id")


def press_and_wait(page, root, key: str, current: str) -> None:
    """Press a key and wait until the page shows another task (or nothing)."""
    page.keyboard.press(key)
    page.wait_for_function("prev => document.getElementById('annotate').dataset.taskId !== prev", arg=current)


def settled(root) -> None:
    expect(root).to_have_attribute("data-pending", "0")


def test_an_annotator_labels_ten_images_with_the_keyboard_alone(page, live_server, login, project, alice, client_for,
                                                                 make_batch):
    make_batch(project, 10)
    root = open_annotator(page, live_server, login, project)
    expect(page.get_by_role("button", name=re.compile("Photorealistic"))).to_be_visible()
    given = {}
    for i in range(10):
        task_id = shown_task(root)
        assert task_id not in given
        key = "1" if i % 2 == 0 else "2"
        given[task_id] = "Photorealistic" if key == "1" else "Anime"
        press_and_wait(page, root, key, task_id)
    expect(root).to_have_attribute("data-state", "empty")
    settled(root)
    expect(page.get_by_text("Nothing left for you to label")).to_be_visible()
    expect(page.locator("#my-count")).to_have_text("10")

    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/export/")
    assert response.status_code == 200
    rows = {str(r["id"]): r for r in json.loads(b"".join(response.streaming_content))}
    assert {task_id: rows[task_id]["answer"] for task_id in given} == given
    assert all(rows[t]["annotations"][0]["annotator"] == "bob" for t in given)
    assert all(rows[t]["annotations"][0]["duration_ms"] > 0 for t in given)


def test_the_long_hint_shows_on_hover_on_focus_and_with_the_question_mark(page, live_server, login, project, make_batch):
    make_batch(project, 2)
    root = open_annotator(page, live_server, login, project)
    shown_task(root)
    anime = page.get_by_role("button", name=re.compile("Anime"))
    expect(anime).to_have_accessible_description("Cel shading, clean outlines, big eyes.")
    hint = page.get_by_role("tooltip").filter(has_text="Cel shading")
    expect(hint).to_be_hidden()
    anime.hover()
    expect(hint).to_be_visible()
    page.mouse.move(0, 0)
    expect(hint).to_be_hidden()

    page.get_by_role("button", name=re.compile("Photorealistic")).focus()
    page.keyboard.press("Tab")  # keyboard focus moves to Anime
    expect(anime).to_be_focused()
    expect(hint).to_be_visible()
    page.locator("body").click(position={"x": 5, "y": 5})
    expect(hint).to_be_hidden()

    page.keyboard.press("?")
    expect(page.get_by_role("tooltip")).to_have_count(3)
    for text in ("Natural light", "Cel shading", "Cartoons"):
        expect(page.get_by_role("tooltip").filter(has_text=text)).to_be_visible()
    page.keyboard.press("Escape")
    expect(hint).to_be_hidden()


def test_undo_brings_the_last_image_back_and_withdraws_the_answer(page, live_server, login, project, bob, make_batch):
    make_batch(project, 3)
    root = open_annotator(page, live_server, login, project)
    first = shown_task(root)
    press_and_wait(page, root, "1", first)
    settled(root)
    assert Annotation.objects.live().get(task_id=first, annotator=bob).choice.label == "Photorealistic"

    second = shown_task(root)
    page.keyboard.press("u")
    page.wait_for_function("want => document.getElementById('annotate').dataset.taskId === want", arg=first)
    settled(root)
    expect(page.get_by_role("status").filter(has_text="Undone")).to_be_visible()
    assert not Annotation.objects.live().filter(task_id=first).exists()
    assert Task.objects.get(pk=first).status == TaskStatus.QUEUED

    press_and_wait(page, root, "2", first)
    assert shown_task(root) == second  # the image that was on screen comes back next
    settled(root)
    assert Annotation.objects.live().get(task_id=first, annotator=bob).choice.label == "Anime"
    assert Annotation.objects.filter(task_id=first).count() == 2  # the undone answer is kept, discarded


def test_skip_moves_on_without_answering(page, live_server, login, project, bob, make_batch):
    make_batch(project, 2)
    root = open_annotator(page, live_server, login, project)
    first = shown_task(root)
    press_and_wait(page, root, "s", first)
    settled(root)
    second = shown_task(root)
    assert second != first
    assert not Annotation.objects.filter(task_id=first).exists()
    press_and_wait(page, root, "3", second)
    expect(root).to_have_attribute("data-state", "empty")  # the skipped image does not come straight back


def test_a_second_annotator_never_gets_a_task_already_at_its_overlap(page, browser, live_server, login, project,
                                                                      make_batch):
    make_batch(project, 6)  # overlap 1: each task goes to one annotator
    bob_root = open_annotator(page, live_server, login, project, "bob")
    shown_task(bob_root)
    expect(bob_root).to_have_attribute("data-state", "ready")

    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        dave = context.new_page()
        dave_root = open_annotator(dave, live_server, login, project, "dave")
        dave_seen = []
        while True:
            dave.wait_for_function("() => ['ready', 'empty'].includes(document.getElementById('annotate').dataset.state)")
            if dave_root.get_attribute("data-state") == "empty":
                break
            task_id = dave_root.get_attribute("data-task-id")
            dave_seen.append(task_id)
            press_and_wait(dave, dave_root, "2", task_id)
        settled(dave_root)
    finally:
        context.close()

    bob_seen = []
    while True:
        page.wait_for_function("() => ['ready', 'empty'].includes(document.getElementById('annotate').dataset.state)")
        if bob_root.get_attribute("data-state") == "empty":
            break
        task_id = bob_root.get_attribute("data-task-id")
        bob_seen.append(task_id)
        press_and_wait(page, bob_root, "1", task_id)
    settled(bob_root)

    assert not set(bob_seen) & set(dave_seen)
    assert len(bob_seen) + len(dave_seen) == 6
    assert all(t.annotation_count == 1 and t.status == TaskStatus.COMPLETED for t in Task.objects.all())


def test_the_page_works_at_tablet_width(page, live_server, login, project, bob, make_batch):
    make_batch(project, 2)
    page.set_viewport_size({"width": 768, "height": 1024})
    root = open_annotator(page, live_server, login, project)
    first = shown_task(root)
    expect(page.locator("#task-image")).to_be_in_viewport()
    button = page.get_by_role("button", name=re.compile("Neither"))
    expect(button).to_be_in_viewport()
    button.click()
    page.wait_for_function("prev => document.getElementById('annotate').dataset.taskId !== prev", arg=first)
    settled(root)
    assert Annotation.objects.get(task_id=first, annotator=bob).choice.label == "Neither"
