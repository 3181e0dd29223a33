"""Owner pages in Chromium: the taxonomy editor and the batch list with uploads."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Batch, BatchStatus, Choice, Task
from tests.conftest import png_bytes, zip_bytes

pytestmark = pytest.mark.browser


def open_settings(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    expect(page.locator("#settings")).to_have_attribute("data-state", "ready")


def row(page, label):
    return page.locator("#choice-rows .row").filter(has=page.locator(f'input[name=label][value="{label}"]'))


def test_an_owner_sees_a_hotkey_conflict_refused_and_nothing_changes(page, live_server, login, project):
    open_settings(page, live_server, login, project)
    anime = row(page, "Anime")
    anime.get_by_label("Hotkey").fill("1")
    anime.get_by_label("Long hint (tooltip)").fill("Changed, but not saved")
    page.get_by_role("button", name="Save settings and choices").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("hotkey '1' is used by both 'Photorealistic' and 'Anime'")
    expect(alert).to_be_focused()
    assert list(project.choices.values_list("hotkey", flat=True)) == ["1", "2", "3"]
    assert Choice.objects.get(project=project, label="Anime").long_hint.startswith("Cel shading")

    anime.get_by_label("Hotkey").fill("s")
    page.get_by_role("button", name="Save settings and choices").click()
    expect(alert).to_contain_text("reserved by the annotator page")
    assert list(project.choices.values_list("hotkey", flat=True)) == ["1", "2", "3"]


def test_an_owner_edits_reorders_and_adds_choices(page, live_server, login, project):
    open_settings(page, live_server, login, project)
    page.get_by_label("Annotators per task (overlap)").fill("2")
    row(page, "Anime").get_by_label("Long hint (tooltip)").fill("Flat colours and hard shadows.")
    page.get_by_role("button", name="Move Neither up").click()
    page.get_by_role("button", name="Add a choice").click()
    new = page.locator("#choice-rows .row").last
    new.get_by_label("Label").fill("Painting")
    new.get_by_label("Description").fill("Brush strokes")
    new.get_by_label("Hotkey").fill("4")
    new.get_by_label("Domain role").select_option("B")
    page.get_by_role("button", name="Save settings and choices").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()

    project.refresh_from_db()
    assert project.overlap == 2
    choices = list(project.choices.order_by("order").values_list("label", "hotkey", "domain"))
    assert choices == [("Photorealistic", "1", "A"), ("Neither", "3", "excluded"), ("Anime", "2", "B"),
                       ("Painting", "4", "B")]
    assert Choice.objects.get(project=project, label="Anime").long_hint == "Flat colours and hard shadows."


def test_an_annotator_cannot_open_the_settings(page, live_server, login, project):
    login(page, "bob")
    response = page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    assert response.status == 403


def test_an_owner_creates_a_batch_uploads_files_and_a_zip_and_sees_each_result(page, live_server, login, project,
                                                                               tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "more.zip").write_bytes(zip_bytes({"b.png": png_bytes(2), "c.png": png_bytes(3), "a-again.png": png_bytes(1)}))
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    page.get_by_label("Name").fill("calibration-1")
    page.get_by_role("button", name="Create batch").click()
    batch_row = page.locator("#batch-table tbody tr").filter(has_text="calibration-1")
    expect(batch_row).to_contain_text("open")
    expect(page.get_by_label("Into batch (open batches only)")).to_have_value(str(Batch.objects.get().pk))

    page.get_by_label("Images or zip archives").set_input_files(
        [tmp_path / "a.png", tmp_path / "broken.png", tmp_path / "more.zip"]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text("3 created, 1 duplicate, 1 rejected")
    expect(page.locator("#upload-items tbody tr")).to_have_count(5)
    expect(page.locator('#upload-items tr[data-status="rejected"]')).to_contain_text("broken.png")
    assert Task.objects.count() == 3

    batch_row.get_by_role("button", name="Finalize calibration-1").click()
    expect(batch_row).to_contain_text("finalized")
    expect(batch_row.get_by_role("progressbar")).to_be_visible()
    expect(batch_row).to_contain_text("0 / 3 (0%)")
    assert Batch.objects.get().status == BatchStatus.FINALIZED
