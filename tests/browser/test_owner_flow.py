"""An owner's whole job in Chromium, with no API call from the test: create a project, add people,
calibrate, run a production batch, audit it, build and approve a split, export and read the file."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from labeling.models import Batch, Membership, Project, Split, Task
from tests.conftest import PASSWORD, png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def sign_in(page, live_server, username, password=PASSWORD):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def label_everything(page, live_server, project_id, keys):
    """Answer every image the annotator page offers, cycling through `keys`; returns how many."""
    page.goto(f"{live_server.url}/projects/{project_id}/annotate/")
    root = page.locator("#annotate")
    expect(root).not_to_have_attribute("data-state", "loading")
    answered = 0
    while root.get_attribute("data-state") == "ready":
        task = root.get_attribute("data-task-id")
        page.keyboard.press(keys[answered % len(keys)])
        answered += 1
        page.wait_for_function("t => document.getElementById('annotate').dataset.taskId !== t", arg=task)
        expect(root).not_to_have_attribute("data-state", "loading")
    expect(root).to_have_attribute("data-pending", "0")
    return answered


def upload(page, tmp_path, batch_name, seeds):
    files = []
    for seed in seeds:
        path = tmp_path / f"img-{seed}.png"
        path.write_bytes(png_bytes(seed))
        files.append(path)
    page.get_by_label("Into batch (open batches only)").select_option(label=batch_name)
    page.get_by_label("Images or zip archives").set_input_files(files)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text(f"{len(seeds)} created, 0 duplicate, 0 rejected")
    expect(page.locator("#upload-bar")).to_have_attribute("value", "1")


def create_batch(page, name, kind):
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Kind").select_option(kind)
    page.get_by_role("button", name="Create batch").click()
    expect(page.locator("#batch-table tbody tr").filter(has_text=name)).to_contain_text("open")


def test_an_owner_runs_a_project_from_creation_to_an_export_in_the_browser(
    open_page, live_server, alice, carol, celery_worker, tmp_path
):
    owner = open_page()
    sign_in(owner, live_server, "alice")
    owner.get_by_role("link", name="New project").click()

    # --- a new project, with its taxonomy and settings -------------------------------------------
    owner.get_by_label("Name", exact=True).fill("Photo or anime")
    owner.get_by_label("Question").fill("Is this a photo or anime?")
    owner.get_by_label("Instructions").fill("Photos have sensor noise.\n\nAnime has clean outlines.")
    expect(owner.locator("#instructions-preview p")).to_have_count(2)
    rows = owner.locator("#choice-rows .row")
    rows.nth(0).get_by_label("Label").fill("Photo")
    rows.nth(0).get_by_label("Long hint (tooltip)").fill("Natural light and lens blur.")
    rows.nth(1).get_by_label("Label").fill("Anime")
    owner.get_by_label("Audit sample size").fill("4")
    owner.get_by_label("Maximum error rate").fill("0.6")
    expect(owner.locator("#audit-explanation")).to_contain_text("An audit of 4 passes")
    owner.get_by_label("Gold share of production tasks").fill("0")
    owner.get_by_role("button", name="Create project").click()
    owner.wait_for_url("**/batches/?created=1")
    project = Project.objects.get(name="Photo or anime")
    assert list(project.choices.values_list("label", "hotkey", "domain")) == [
        ("Photo", "1", "A"), ("Anime", "2", "B"), ("Neither", "3", "excluded")]
    assert (project.audit_sample_size, project.max_error_rate, project.gold_rate) == (4, 0.6, 0)
    assert Membership.objects.get(project=project, user=alice).role == "owner"

    # --- people: a new annotator account, an existing reviewer ------------------------------------
    owner.get_by_role("link", name="Members").first.click()
    owner.get_by_label("Username", exact=True).fill("erin")
    owner.get_by_label("Role", exact=True).select_option("annotator")
    owner.get_by_role("button", name="Create a new account").click()
    expect(owner.locator("#new-account")).to_be_visible()
    password = owner.locator("#new-password").text_content()
    assert len(password) >= 12
    owner.get_by_label("Username", exact=True).fill("carol")
    owner.get_by_label("Role", exact=True).select_option("reviewer")
    owner.get_by_role("button", name="Add existing account").click()
    expect(owner.locator('#member-table tr[data-username="carol"]')).to_be_visible()
    assert dict(project.memberships.values_list("user__username", "role")) == {
        "alice": "owner", "erin": "annotator", "carol": "reviewer"}

    # --- calibration: a batch, files, labels, review, approval ------------------------------------
    owner.get_by_role("link", name="Batches").first.click()
    create_batch(owner, "cal-1", "calibration")
    upload(owner, tmp_path, "cal-1", range(100, 104))
    owner.get_by_role("button", name="Finalize cal-1").click()
    expect(owner.locator('#batch-table tr:has-text("cal-1")')).to_contain_text("finalized")

    annotator = open_page()
    sign_in(annotator, live_server, "erin", password)
    assert label_everything(annotator, live_server, project.pk, ["1", "2"]) == 4

    owner.goto(f"{live_server.url}/projects/{project.pk}/review/")
    owner.get_by_label("Calibration answers").check()
    review = owner.locator("#review")
    for _ in range(4):
        expect(review).to_have_attribute("data-state", "ready")
        current = review.get_attribute("data-task")
        owner.keyboard.press("Enter")
        owner.wait_for_function("t => document.getElementById('review').dataset.task !== t || "
                                "document.getElementById('review').dataset.state === 'empty'", arg=current)
    expect(review).to_have_attribute("data-state", "empty")
    expect(owner.locator("#calibration-summary")).to_contain_text("4 of 4 calibration tasks reviewed")
    owner.get_by_role("button", name="Approve calibration").click()
    expect(owner.get_by_role("status").filter(has_text="Calibration approved")).to_be_visible()
    project.refresh_from_db()
    assert project.calibration_approved

    # --- production: a batch labeled, audited by the reviewer, accepted ---------------------------
    owner.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    create_batch(owner, "prod-1", "production")
    upload(owner, tmp_path, "prod-1", range(200, 206))
    owner.get_by_role("button", name="Finalize prod-1").click()
    assert label_everything(annotator, live_server, project.pk, ["1", "2"]) == 6
    prod = Batch.objects.get(project=project, name="prod-1")
    assert prod.status == "labeled"

    owner.reload()
    owner.get_by_role("button", name="Audit prod-1").click()
    expect(owner.get_by_label("Sample size")).to_have_value("4")
    expect(owner.locator("#audit-plan")).to_contain_text("4 of 6 answered tasks will be drawn")
    expect(owner.locator("#audit-verdict")).to_contain_text("An audit of 4 passes with up to")
    owner.get_by_role("button", name="Draw the sample").click()
    expect(owner.locator("#list-status")).to_contain_text("Sample of 4 drawn from prod-1")
    expect(owner.locator('#batch-table tr:has-text("prod-1") .badge')).to_have_text("audited")

    reviewer = open_page()
    sign_in(reviewer, live_server, "carol")
    reviewer.goto(f"{live_server.url}/projects/{project.pk}/review/")
    root = reviewer.locator("#review")
    for _ in range(4):
        expect(root).to_have_attribute("data-state", "ready")
        reviewer.keyboard.press("Enter")
        reviewer.wait_for_function("n => Number(document.getElementById('reviewed-count').textContent) >= n", arg=_ + 1)
    expect(root).to_have_attribute("data-state", "empty")
    expect(reviewer.locator("#status")).to_contain_text("accepted")
    owner.reload()
    expect(owner.locator('#batch-table tr:has-text("prod-1") .badge')).to_have_text("accepted")
    assert Batch.objects.get(pk=prod.pk).status == "accepted"

    # --- a split built and approved on the training page ------------------------------------------
    owner.goto(f"{live_server.url}/projects/{project.pk}/training/")
    owner.get_by_label("Test share").fill("0.3")
    owner.get_by_role("button", name="Build split").click()
    owner.get_by_role("button", name="Approve split v1").click()
    expect(owner.locator("#splits tbody tr").first).to_contain_text("approved")
    split = Split.objects.get(project=project)
    assert split.status == "approved" and split.counts["A"]["total"] + split.counts["B"]["total"] == 6

    # --- a JSON export, started on the exports page, downloaded and read ---------------------------
    owner.goto(f"{live_server.url}/projects/{project.pk}/exports/")
    owner.get_by_label("JSON one array of tasks").check()
    owner.get_by_role("button", name="Start export").click()
    done = owner.locator('#export-table tr[data-status="done"]')
    expect(done).to_have_count(1, timeout=60_000)
    expect(done.get_by_role("progressbar")).to_have_attribute("value", "1")
    with owner.expect_download() as download:
        done.get_by_role("link", name="Download").click()
    rows = json.loads(open(download.value.path()).read())
    assert len(rows) == Task.objects.filter(project=project).count() == 10
    assert {row["answer"] for row in rows} == {"Photo", "Anime"}
    assert all(row["annotations"][0]["annotator"] == "erin" for row in rows)
    audited = [row for row in rows if row.get("audit")]
    assert len(audited) == 4
