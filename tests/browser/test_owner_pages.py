"""The owner pages' main refusals in Chromium: each says what to click, never an API route, and
nothing is changed. Also: the CSP holds in the browser, the API docs need no internet, `?` helps."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from labeling import answers, leasing, projects
from labeling.models import Batch, Export, Membership, Project, Task, Webhook

pytestmark = pytest.mark.browser
ROUTE = re.compile(r"/api/|POST |GET |manage\.py")


def no_route(locator):
    text = locator.inner_text()
    assert not ROUTE.search(text), text
    return text


def test_a_new_project_with_a_bad_taxonomy_is_refused_and_nothing_is_created(page, live_server, login, alice):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/new/")
    page.get_by_role("button", name="Create project").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("give the project a name")
    page.get_by_label("Name", exact=True).fill("Cats")
    rows = page.locator("#choice-rows .row")
    rows.nth(0).get_by_label("Label").fill("Cat")
    rows.nth(1).get_by_label("Label").fill("Dog")
    rows.nth(1).get_by_label("Hotkey").fill("1")
    page.get_by_role("button", name="Create project").click()
    expect(alert).to_contain_text("hotkey '1' is used by both 'Cat' and 'Dog'")
    expect(alert).to_be_focused()
    no_route(alert)
    page.get_by_label("Maximum error rate").fill("0.001")
    page.get_by_label("Audit sample size").fill("10")
    expect(page.locator("#audit-explanation")).to_contain_text("With 10 audited answers a batch can never pass 0.1%")
    assert not Project.objects.filter(name="Cats").exists()


def test_members_page_says_which_button_to_click_and_keeps_the_last_owner(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/members/")
    expect(page.locator("#members-app")).to_have_attribute("data-state", "ready")
    page.get_by_label("Username", exact=True).fill("ghost")
    page.get_by_role("button", name="Add existing account").click()
    alert = page.locator("#add-errors")
    expect(alert).to_contain_text("Click “Create a new account”")
    no_route(alert)
    page.get_by_label("Username", exact=True).fill("bob")
    page.get_by_role("button", name="Create a new account").click()
    expect(alert).to_contain_text("click “Add existing account” instead")
    remove = page.get_by_role("button", name="Remove alice")
    remove.click()
    expect(remove).to_have_text("Remove alice?")
    # The table is redrawn after every change; the question asked survives the redraw.
    page.get_by_label("Role of dave").select_option("reviewer")
    expect(page.locator("#list-status")).to_contain_text("dave is now a reviewer")
    expect(page.get_by_label("Role of dave")).to_have_value("reviewer")
    expect(remove).to_have_text("Remove alice?")
    remove.click()
    expect(page.locator("#list-errors")).to_contain_text("last owner")
    assert Membership.objects.filter(project=project).count() == 4
    assert not Membership.objects.filter(user__username="ghost").exists()


def test_batches_page_refuses_production_before_calibration_in_page_words(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    expect(page.locator("#batches-app")).to_have_attribute("data-state", "ready")
    expect(page.locator("#batch-table tbody")).to_contain_text("No batches yet")
    page.get_by_label("Name", exact=True).fill("prod-too-early")
    page.get_by_label("Kind").select_option("production")
    page.get_by_role("button", name="Create batch").click()
    alert = page.locator("#new-errors")
    expect(alert).to_contain_text("click “Approve calibration”")
    no_route(alert)
    expect(page.get_by_role("button", name="Upload")).to_be_disabled()
    expect(page.get_by_label("Into batch (open batches only)")).to_contain_text("no open batch: create one first")
    assert not Batch.objects.exists()


def test_batches_page_explains_an_audit_that_can_never_pass_and_takes_url_lists(page, live_server, login, project, bob,
                                                                                 make_batch, tmp_path):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 3, kind="production", seed=4000)
    choice = project.choices.first().pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=choice, duration_ms=5)
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    page.get_by_role("button", name=f"Audit {batch.name}").click()
    expect(page.locator("#audit-verdict")).to_have_text(re.compile(
        r"^With 3 labeled images a batch can never pass 2%: 189 error-free audits are needed"))
    page.get_by_role("button", name="Close").click()

    projects.create_batch(project=project, name="urls", kind="production", created_by=project.created_by)
    page.reload()
    page.locator("#url-lists summary").click()
    page.get_by_label("URLs, one per line").fill("https://images.example.org/1.jpg,img-1\nnot a url")
    (tmp_path / "more.json").write_text('[{"image_url": "https://images.example.org/2.jpg", "unique_id": "img-2", "metadata": {"src": "web"}}]')
    page.get_by_label("Or a CSV or JSON file of URLs").set_input_files(tmp_path / "more.json")
    page.get_by_label("Into batch (open batches only)").select_option(label="urls")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text("2 created, 0 duplicate, 1 rejected")
    created = Task.objects.filter(batch__name="urls").order_by("unique_id")
    assert [(t.unique_id, t.source_url) for t in created] == [
        ("img-1", "https://images.example.org/1.jpg"), ("img-2", "https://images.example.org/2.jpg")]
    assert created[1].metadata == {"src": "web"}


def test_tasks_page_filters_opens_a_task_and_reports_refused_bulk_actions(page, live_server, login, project, bob, make_batch):
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 4, kind="production", seed=4100)
    task = leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=task, annotator=bob, choice_id=project.choices.first().pk, duration_ms=5)
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/tasks/?status=completed")
    app = page.locator("#tasks-app")
    expect(app).to_have_attribute("data-state", "ready")
    expect(page.locator(".trow")).to_have_count(1)
    page.get_by_label("Status").select_option("")
    expect(page.locator(".trow")).to_have_count(4)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page.locator("#drawer")).to_be_visible()
    expect(page.locator("#drawer")).to_contain_text(f"Task #{task.pk}")
    expect(page.locator("#drawer")).to_contain_text("bob")
    page.keyboard.press("Escape")
    expect(page.locator("#drawer")).to_be_hidden()
    page.locator("#select-all").check()
    page.get_by_role("button", name="Make gold").click()
    status = page.locator("#bulk-status")
    expect(status).to_contain_text("0 made gold; 4 refused")
    no_route(status)
    page.get_by_role("button", name="Cancel tasks").click()
    expect(status).to_contain_text("3 cancelled; 1 refused")
    assert Task.objects.filter(batch=batch, status="cancelled").count() == 3
    assert not Task.objects.filter(is_gold=True).exists()
    page.get_by_label("Agreement from").fill("0.9")
    page.get_by_label("to", exact=True).fill("0.1")
    expect(page.locator("#list-errors")).to_contain_text("agreement_max must be at least agreement_min")


def test_quality_page_says_not_enough_data_yet_instead_of_empty_charts(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/quality/")
    expect(page.locator("#quality-app")).to_have_attribute("data-state", "ready")
    expect(page.locator(".not-enough")).to_have_count(4)
    for box in page.locator(".not-enough").all():
        assert no_route(box).startswith("Not enough data yet")
    expect(page.locator("svg")).to_have_count(0)


def test_exports_page_refuses_a_split_zip_without_an_approved_split(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/exports/")
    expect(page.locator("#exports-app")).to_have_attribute("data-state", "ready")
    expect(page.locator("#export-table tbody")).to_contain_text("No exports yet")
    page.get_by_label("Split zip").check()
    page.get_by_role("button", name="Start export").click()
    alert = page.locator("#export-errors")
    expect(alert).to_contain_text("Approve a split on the Training page first")
    no_route(alert)
    assert not Export.objects.exists()


def test_webhooks_page_refuses_an_internal_url_and_reveals_and_rotates_the_secret(page, live_server, login, project):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/webhooks/")
    expect(page.locator("#webhooks-app")).to_have_attribute("data-state", "ready")
    page.get_by_label("URL", exact=True).fill("http://169.254.169.254/latest")
    page.get_by_role("button", name="Add webhook").click()
    alert = page.locator("#hook-errors")
    expect(alert).to_be_visible()
    no_route(alert)
    assert not Webhook.objects.exists()
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#secret")).to_have_text(project.webhook_secret)
    page.get_by_role("button", name="Rotate…").click()
    page.get_by_role("button", name=re.compile("^Rotate: receivers")).click()
    project.refresh_from_db()
    expect(page.locator("#secret")).to_have_text(project.webhook_secret)


def test_the_csp_stops_an_injected_inline_script(browser, live_server, login, project):
    # A page of its own: the watched pages would (rightly) fail the test on the violation caused here.
    context = browser.new_context()
    page = context.new_page()
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/batches/")
    seen = []
    page.on("console", lambda m: seen.append(m.text))
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.append(s); }")
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.injected") is None
    assert any("Content Security Policy" in text for text in seen)
    context.close()


def test_the_api_docs_render_with_the_internet_cut_off(page, live_server, login):
    outside = []

    def guard(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    login(page, "alice")
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Winnow API", timeout=20_000)
    expect(page.locator(".opblock-tag").first).to_be_visible()
    assert outside == []


@pytest.mark.parametrize("name", ["batches", "grid", "review", "tasks", "members"])
def test_question_mark_shows_the_pages_keyboard_help(page, live_server, login, project, name):
    login(page, "alice")
    page.goto(f"{live_server.url}/projects/{project.pk}/{name}/")
    page.wait_for_load_state("networkidle")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("?")
    help_panel = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_panel).to_be_visible()
    expect(help_panel.locator("h3")).to_have_count(2)
    page.keyboard.press("Escape")
    expect(help_panel).to_be_hidden()
