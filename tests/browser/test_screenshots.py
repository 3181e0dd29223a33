"""Screenshots of every page for docs/UI.md, on a project in the middle of its life.

Skipped unless WINNOW_SCREENSHOTS is set: `WINNOW_SCREENSHOTS=1 pytest tests/browser/test_screenshots.py`
writes docs/ui-*.png. The state is built with the domain functions, as the test's set-up; the pages
then show it through the API like any other visit.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from labeling import answers, exports, ingest, leasing, projects, quality, splits
from labeling.models import Annotation, Delivery, Export, Task, TaskStatus, Webhook
from tests.conftest import png_bytes
from winnow.exceptions import NotAllowed

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.environ.get("WINNOW_SCREENSHOTS"), reason="set WINNOW_SCREENSHOTS=1")]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def batch_of(project, alice, name, kind, seeds):
    batch = projects.create_batch(project=project, name=name, kind=kind, created_by=alice)
    ingest.ingest_files(batch=batch, files=[(f"img-{s}.png", io.BytesIO(png_bytes(s, 96))) for s in seeds])
    projects.finalize_batch(batch=batch)
    batch.refresh_from_db()
    return batch


def label(project, annotators, pattern, limit=None):
    """Each annotator answers what they are offered: choice index pattern[i % len] (wrong now and then)."""
    choices = list(project.choices.order_by("order"))
    done = 0
    for who in annotators:
        i = 0
        try:
            while (limit is None or done < limit) and (task := leasing.lease_next_task(project=project, annotator=who)):
                choice = choices[pattern[(task.pk + i) % len(pattern)]]
                answers.submit_annotation(task=task, annotator=who, choice_id=choice.pk, duration_ms=900 + 37 * (task.pk % 40))
                i += 1
                done += 1
        except NotAllowed:  # paused by the gold checks: the others carry on
            continue


def build(project, alice, bob, dave, carol):
    project.overlap, project.max_error_rate, project.audit_sample_size, project.gold_rate = 2, 0.4, 8, 0.2
    project.min_gold_answers, project.min_gold_accuracy = 3, 0.5
    project.save()
    cal = batch_of(project, alice, "calibration-1", "calibration", range(1, 11))
    label(project, [bob, dave], [0, 1, 2, 0, 1])
    for task in Task.objects.filter(batch=cal):
        quality.set_gold(task=task, choice_id=task.final_choice_id or project.choices.first().pk)
    projects.approve_calibration(project=project)
    good = batch_of(project, alice, "photos-week-1", "production", range(20, 44))
    label(project, [bob, dave], [0, 1, 0, 1, 2])
    good.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=good, size=8, seed=7)
    for audit in audits:
        quality.submit_audit(task=audit.task, reviewer=carol, correct=True, choice_id=None)
    bad = batch_of(project, alice, "web-scrape-2", "production", range(50, 74))
    label(project, [bob, dave], [1, 1, 0, 2, 0])
    bad.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=bad, size=8, seed=9)
    anime = project.choices.get(label="Anime").pk
    for i, audit in enumerate(audits):
        quality.submit_audit(task=audit.task, reviewer=carol, correct=i % 3 != 0, choice_id=anime)
    batch_of(project, alice, "photos-week-2", "production", range(80, 110))
    label(project, [bob], [0, 1], limit=9)
    # Answers spread over a week, so the gold chart has a time axis.
    for n, annotation in enumerate(Annotation.objects.filter(task__is_gold=True).order_by("id")):
        Annotation.objects.filter(pk=annotation.pk).update(created_at=timezone.now() - timedelta(days=6 - n % 7))
    open_batch = projects.create_batch(project=project, name="urls-march", kind="production", created_by=alice)
    Task.objects.bulk_create([
        Task(project=project, batch=open_batch, source_url=f"https://images.example.org/{i}.jpg", status=TaskStatus.FAILED,
             error=reason) for i, reason in enumerate(["HTTP 404 from images.example.org", "no answer within 15 s",
                                                       "content type text/html is not an image"])])
    export = Export.objects.create(project=project, format="json", requested_by=alice)
    exports.run_export(export_id=export.pk)
    Export.objects.create(project=project, format="csv", requested_by=alice, status="running", rows_done=61, rows_total=104,
                          started_at=timezone.now())
    hook = Webhook.objects.create(project=project, url="https://hooks.example.org/winnow", events=["batch.audited", "split.approved"],
                                  description="Team chat", created_by=alice)
    now = timezone.now()
    Delivery.objects.create(project=project, webhook=hook, event="batch.audited", url=hook.url, payload={"batch": good.pk},
                            status="delivered", attempts=1, response_code=200, last_attempt_at=now, delivered_at=now)
    Delivery.objects.create(project=project, webhook=hook, event="batch.audited", url=hook.url, payload={"batch": bad.pk},
                            status="failed", attempts=9, response_code=502, last_error="the receiver answered 502 Bad Gateway",
                            last_attempt_at=now)
    split = splits.build_split(project=project, created_by=alice, test_fraction=0.25)
    splits.approve_split(split=split, approved_by=alice)
    projects.add_member(project=project, username="mallory", role="annotator")
    quality.pause_annotator(project=project, username="mallory", reason="paused by the project's owner: spam answers")


def shot(page, name, full=False):
    page.wait_for_timeout(250)
    page.screenshot(path=str(DOCS / f"ui-{name}.png"), full_page=full)


def test_screenshots_of_every_page(open_page, live_server, login, project, alice, bob, dave, carol, mallory):
    build(project, alice, bob, dave, carol)
    page = open_page()
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "alice")
    url = f"{live_server.url}/projects/{project.pk}"
    shot(page, "home")
    page.goto(f"{live_server.url}/projects/new/")
    page.get_by_label("Name", exact=True).fill("Street photos vs anime stills")
    page.get_by_label("Instructions").fill("Photo: a camera took it.\n\nAnime: drawn, cel-shaded, clean outlines.")
    page.get_by_label("Audit sample size").fill("10")
    shot(page, "new-project", full=True)
    page.goto(f"{url}/members/")
    expect(page.locator("#members-app")).to_have_attribute("data-state", "ready")
    shot(page, "members", full=True)
    page.goto(f"{url}/batches/")
    expect(page.locator("#batches-app")).to_have_attribute("data-state", "ready")
    shot(page, "batches", full=True)
    page.goto(f"{url}/tasks/")
    expect(page.locator("#tasks-app")).to_have_attribute("data-state", "ready")
    shot(page, "tasks")
    page.locator(".trow").nth(12).click()
    expect(page.locator("#drawer h3").first).to_be_visible()
    shot(page, "tasks-drawer")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Thumbnails").click()
    shot(page, "tasks-grid")
    page.goto(f"{url}/quality/")
    expect(page.locator("#quality-app")).to_have_attribute("data-state", "ready")
    shot(page, "quality", full=True)
    page.goto(f"{url}/exports/")
    expect(page.locator("#exports-app")).to_have_attribute("data-state", "ready")
    shot(page, "exports", full=True)
    page.goto(f"{url}/webhooks/")
    expect(page.locator("#webhooks-app")).to_have_attribute("data-state", "ready")
    shot(page, "webhooks", full=True)
    page.goto(f"{url}/training/")
    page.get_by_role("button", name="CPU preset").click()
    shot(page, "training", full=True)
    page.goto(f"{url}/annotate/")
    expect(page.locator("#annotate")).to_have_attribute("data-state", "ready")
    page.get_by_role("button", name="Anime").hover()
    shot(page, "annotate-hint")
    page.mouse.move(5, 300)
    page.keyboard.press("?")
    shot(page, "keyboard-help")
    page.goto(f"{live_server.url}/projects/99999/tasks/")
    shot(page, "404")
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=20_000)
    shot(page, "api-docs")
    other = open_page()
    other.set_viewport_size({"width": 1280, "height": 800})
    login(other, "bob")
    other.goto(f"{url}/tasks/")
    shot(other, "403")
