"""URL tasks: recorded at once, downloaded by a real Celery worker, refused when they point inward."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling import assets, ingest, projects
from labeling.models import BatchKind, Task
from tests.conftest import png_bytes, wait_for

IMAGE = png_bytes(7)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        routes = {
            "/img.png": (200, "image/png", IMAGE),
            "/missing.png": (404, "text/plain", b"nope"),
            "/page.html": (200, "text/html", b"<html></html>"),
        }
        if self.path == "/slow.png":
            time.sleep(5)
        if self.path == "/to-internal":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/img.png")
            self.end_headers()
            return
        if self.path == "/to-allowed":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/img.png")
            self.end_headers()
            return
        status, content_type, body = routes.get(self.path, (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"localhost:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.worker
def test_url_tasks_are_downloaded_by_the_worker_and_bad_urls_fail_with_reasons(
    celery_worker, project, alice, client_for, image_server, make_batch
):
    batch = make_batch(project, 0, finalize=False, kind=BatchKind.CALIBRATION)
    port = image_server.split(":")[1]
    tasks = [
        {"image_url": f"http://{image_server}/img.png", "unique_id": "ok", "metadata": {"source": "web"}},
        {"image_url": f"http://{image_server}/to-allowed", "unique_id": "redirected"},
        {"image_url": f"http://{image_server}/missing.png", "unique_id": "404"},
        {"image_url": f"http://{image_server}/page.html", "unique_id": "html"},
        {"image_url": f"http://{image_server}/slow.png", "unique_id": "slow"},
        {"image_url": f"http://127.0.0.1:{port}/img.png", "unique_id": "loopback"},
        {"image_url": f"http://{image_server}/to-internal", "unique_id": "redirect-inward"},
        {"image_url": "http://169.254.169.254/latest/meta-data/", "unique_id": "metadata"},
        {"image_url": "ftp://example.org/a.png", "unique_id": "ftp"},
    ]
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": tasks}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["summary"] == {"created": 8, "duplicate": 0, "rejected": 1}
    assert "http:// or https://" in response.data["items"][-1]["reason"]

    def settled():
        return not Task.objects.filter(batch=batch, status="pending").exists()

    wait_for(settled, timeout=60, what="URL downloads")
    by_id = {t.unique_id: t for t in Task.objects.filter(batch=batch)}
    assert by_id["ok"].status == "queued" and by_id["ok"].asset.byte_size == len(IMAGE)
    assert by_id["ok"].metadata == {"source": "web"}
    assert by_id["redirected"].status == "queued" and by_id["redirected"].asset_id == by_id["ok"].asset_id
    assert "HTTP 404" in by_id["404"].error
    assert "not an image" in by_id["html"].error
    assert "timed out" in by_id["slow"].error
    assert "internal address" in by_id["loopback"].error
    assert "internal address" in by_id["redirect-inward"].error
    assert "internal address" in by_id["metadata"].error
    assert all(t.asset_id is None for t in by_id.values() if t.status == "failed")


def test_a_reposted_unique_id_makes_no_second_task(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    client = client_for(alice)
    body = {"tasks": [{"image_url": "https://example.org/a.png", "unique_id": "a"},
                      {"image_url": "https://example.org/a2.png", "unique_id": "a"}]}
    first = client.post(f"/api/v1/batches/{batch.pk}/tasks/", body, format="json")
    assert [i["status"] for i in first.data["items"]] == ["created", "duplicate"]
    again = client.post(f"/api/v1/batches/{batch.pk}/tasks/", body, format="json")
    assert again.status_code == 201
    assert [i["status"] for i in again.data["items"]] == ["duplicate", "duplicate"]
    assert again.data["items"][0]["task_id"] == first.data["items"][0]["task_id"]
    assert Task.objects.filter(unique_id="a").count() == 1


def test_malformed_url_items_are_rejected_one_by_one(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    body = {"tasks": [{"unique_id": "x"}, {"image_url": "https://e.org/1.png", "metadata": "nope"},
                      {"image_url": "https://e.org/2.png", "unique_id": ""}, {"image_url": "https://e.org/3.png"}]}
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", body, format="json")
    reasons = [i.get("reason") for i in response.data["items"]]
    assert reasons[0] == "image_url is required"
    assert reasons[1] == "metadata must be a JSON object"
    assert "unique_id must be a string" in reasons[2]
    assert response.data["items"][3]["status"] == "created"
    assert Task.objects.filter(batch=batch).count() == 1


def test_values_postgresql_cannot_store_are_refused_per_item_and_the_rest_kept(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    body = {"tasks": [
        {"image_url": "https://e.org/1.png", "unique_id": "nul\u0000id"},
        {"image_url": "https://e.org/2.png", "metadata": {"note": "a\u0000b"}},
        {"image_url": "https://e.org/3.png", "metadata": {"note": "lone \ud800 surrogate"}},
        {"image_url": "https://e.org/4.png", "unique_id": "fine", "metadata": {"note": "a literal \\u0000 is text"}},
        {"image_url": "https://e.org/5.png", "unique_id": "lone \ud800"},
    ]}
    # Sent as a client sends it: JSON text, where NUL and lone surrogates arrive as \u escapes.
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", json.dumps(body), content_type="application/json")
    assert response.status_code == 201
    items = response.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "rejected", "rejected", "created", "rejected"]
    assert "NUL" in items[0]["reason"] and "NUL" in items[1]["reason"]
    assert "surrogate" in items[2]["reason"] and "surrogate" in items[4]["reason"]
    assert items[4]["name"] == "lone ?"
    assert Task.objects.get(batch=batch).metadata == {"note": "a literal \\u0000 is text"}


def test_metadata_with_nan_is_refused_per_item(project, alice, make_batch):
    """The API's JSON parser refuses NaN already; the service also refuses it for other callers."""
    batch = make_batch(project, 0, finalize=False)
    results = ingest.ingest_urls(batch=batch, items=[{"image_url": "https://e.org/1.png", "metadata": {"x": float("nan")}},
                                                       {"image_url": "https://e.org/2.png", "metadata": {"x": 1.5}}])
    assert [r["status"] for r in results] == ["rejected", "created"]
    assert "NaN" in results[0]["reason"]
    assert Task.objects.get(batch=batch).metadata == {"x": 1.5}


def test_text_that_needs_escaping_is_stored_exactly(project, alice, client_for, make_batch):
    """The bulk insert escapes backslashes, tabs and line breaks: what comes back is what was sent."""
    batch = make_batch(project, 0, finalize=False)
    tricky = {"path": "C:\\images\\n1.png", "tab": "a\tb", "lines": "one\ntwo\r\n", "quote": 'say "hi"', "uni": "naïve ✓"}
    body = {"tasks": [{"image_url": "https://e.org/a.png?q=\\N", "unique_id": "back\\slash\ttab", "metadata": tricky},
                      {"image_url": "https://e.org/b.png"}]}
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", body, format="json")
    assert [i["status"] for i in response.data["items"]] == ["created", "created"]
    first, second = Task.objects.filter(batch=batch).order_by("id")
    assert (first.unique_id, first.metadata, first.source_url) == ("back\\slash\ttab", tricky, "https://e.org/a.png?q=\\N")
    assert (second.unique_id, second.metadata, second.project_id) == (None, {}, project.pk)
    assert [i["task_id"] for i in response.data["items"]] == [first.pk, second.pk]


def test_a_request_repeating_some_unique_ids_creates_only_the_new_ones_in_order(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    client = client_for(alice)
    client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": [{"image_url": "https://e.org/2.png", "unique_id": "u2"}]},
                format="json")
    body = {"tasks": [{"image_url": f"https://e.org/{i}.png", "unique_id": f"u{i}", "metadata": {"i": i}} for i in range(5)]}
    response = client.post(f"/api/v1/batches/{batch.pk}/tasks/", body, format="json")
    items = response.data["items"]
    assert [i["status"] for i in items] == ["created", "created", "duplicate", "created", "created"]
    for i, item in enumerate(items):
        task = Task.objects.get(pk=item["task_id"])
        assert task.unique_id == f"u{i}" and task.source_url == f"https://e.org/{i}.png"
        assert task.metadata == ({} if i == 2 else {"i": i})  # the earlier task keeps its own metadata
    assert Task.objects.filter(batch=batch).count() == 5


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_task_whose_project_is_not_its_batchs(project, make_batch, alice):
    from django.db import IntegrityError, transaction

    from labeling.models import TaskStatus

    batch = make_batch(project, 0, finalize=False)
    other = projects.create_project(created_by=alice, fields={"name": "other"},
                                    choices=[{"label": "x", "hotkey": "1", "domain": "A"}])
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(project=other, batch=batch, status=TaskStatus.PENDING, source_url="https://e.org/x.png")
    assert not Task.objects.filter(project=other).exists()


def test_an_empty_task_list_says_what_to_send(project, alice, client_for, make_batch):
    batch = make_batch(project, 0, finalize=False)
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": []}, format="json")
    assert response.status_code == 400
    assert "image_url" in str(response.data)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/a.png", "http://10.1.2.3/a.png", "http://192.168.0.9/a.png", "http://[::1]/a.png",
     "http://169.254.169.254/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/"],
)
def test_inward_addresses_are_refused(url, settings):
    settings.INGEST_ALLOWED_HOSTS = []
    with pytest.raises(assets.Rejected, match="internal address"):
        assets.check_url(url)


def test_the_allow_list_admits_a_named_internal_host(settings):
    settings.INGEST_ALLOWED_HOSTS = ["127.0.0.1"]
    assets.check_url("http://127.0.0.1:9/a.png")  # no exception


def test_a_download_job_run_twice_does_nothing_the_second_time(project, make_batch, settings):
    batch = make_batch(project, 0, finalize=False)
    ingest.ingest_urls(batch=batch, items=[{"image_url": "http://127.0.0.1:9/a.png", "unique_id": "z"}])
    task = Task.objects.get(unique_id="z")
    settings.INGEST_ALLOWED_HOSTS = []
    ingest.download_task_images(task_ids=[task.pk])
    task.refresh_from_db()
    assert task.status == "failed" and "internal address" in task.error
    ingest.download_task_images(task_ids=[task.pk])  # redelivered message
    task.refresh_from_db()
    assert task.status == "failed"


def test_a_connection_that_lands_on_an_internal_address_is_refused_before_sending(image_server, settings):
    """DNS rebinding: the host passed the check, then resolved inward for the download. Every connection
    checks the address it reached, so even a URL that skipped check_url cannot reach the inside."""
    port = image_server.split(":")[1]
    settings.INGEST_ALLOWED_HOSTS = []
    with pytest.raises(assets.Rejected, match="127.0.0.1 connected to 127.0.0.1, an internal address"):
        assets.download_session().get(f"http://127.0.0.1:{port}/img.png", timeout=5)
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]  # a host the admin allowed by name may be internal
    assert assets.download_session().get(f"http://localhost:{port}/img.png", timeout=5).content == IMAGE
