"""Webhooks and callbacks: signed deliveries to a receiver on loopback, retries, the delivery log, the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from labeling import answers, ingest, leasing, webhooks
from labeling.models import Batch, Delivery, DeliveryStatus, Project, Task, TaskStatus, Webhook
from tests.conftest import png_bytes, wait_for


class Receiver:
    """An HTTP server on loopback that records every POST and answers with the next queued status (then 200).

    It also serves generated PNGs at /img/<seed>.png, for tasks created from URLs. Reached as
    `localhost`, the host the worker's INGEST_ALLOWED_HOSTS lets through the address check.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"receiver broke")

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/img/") and self.path.endswith(".png"):
                    data = png_bytes(int(self.path[5:-4]))
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self.send_response(404)
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet: the test output is for failures."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def allow_localhost(settings: Any) -> None:
    """The API process checks receiver URLs as the worker does; let it reach the loopback receiver."""
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]


def answer_all(project: Project, annotator: Any, label: str = "Photorealistic") -> int:
    """Answer every task the annotator is handed, with `label`. Returns how many were answered."""
    choice = project.choices.get(label=label)
    count = 0
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choice.pk, duration_ms=500)
        count += 1
    return count


# --- delivery through a real worker -----------------------------------------------------------


@pytest.mark.worker
def test_it_delivers_signed_events_and_callbacks_through_the_worker(
    celery_worker: Any, project: Project, make_batch: Callable[..., Batch], bob: Any, client_for: Any, alice: Any,
    receiver: Receiver, allow_localhost: None,
) -> None:
    response = client_for(alice).post(
        f"/api/v1/projects/{project.pk}/webhooks/",
        {"url": receiver.url + "/hook", "events": ["task.completed", "batch.labeled"]}, format="json",
    )
    assert response.status_code == 201, response.json()
    batch = make_batch(project, n=2)
    Batch.objects.filter(pk=batch.pk).update(callback_url=receiver.url + "/batch-callback")
    first = Task.objects.filter(batch=batch).order_by("id").first()
    Task.objects.filter(pk=first.pk).update(callback_url=receiver.url + "/task-callback")

    assert answer_all(project, bob) == 2

    # 2 task.completed + 1 batch.labeled to the webhook, 1 task callback, 1 batch callback.
    wait_for(lambda: len(receiver.posts()) >= 5, what="five deliveries")
    assert Delivery.objects.filter(project=project).count() == 5
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert set(Delivery.objects.values_list("response_code", "attempts")) == {(200, 1)}
    secret = Project.objects.get(pk=project.pk).webhook_secret
    for post in receiver.posts():
        assert webhooks.verify(secret, post["body"], post["headers"]["X-Winnow-Signature"]), post
    hooks = [json.loads(p["body"]) for p in receiver.posts("/hook")]
    assert sorted(h["event"] for h in hooks) == ["batch.labeled", "task.completed", "task.completed"]
    assert all(h["project"] == {"id": project.pk, "name": project.name} for h in hooks)
    completed = next(h for h in hooks if h["event"] == "task.completed")["data"]
    assert completed["response"] == {"category": "Photorealistic", "taxonomies": {"category": ["Photorealistic"]}}
    # The task callback is Scale's callback body: the task, its response and its id.
    [callback] = receiver.posts("/task-callback")
    body = json.loads(callback["body"])
    assert body["task_id"] == str(first.pk)
    assert body["task"]["status"] == "completed"
    assert body["response"]["category"] == "Photorealistic"
    [batch_callback] = receiver.posts("/batch-callback")
    assert json.loads(batch_callback["body"])["batch"]["status"] == "completed"
    assert json.loads(batch_callback["body"])["counts"]["completed"] == 2


@pytest.mark.worker
def test_it_retries_after_a_500_and_logs_every_attempt(
    transactional_db: Any, start_worker: Callable[..., Any], project: Project, make_batch: Callable[..., Batch],
    bob: Any, alice: Any, client_for: Any, receiver: Receiver, allow_localhost: None, settings: Any,
) -> None:
    # A worker of its own on a queue of its own, with retries half a second apart instead of 30 s.
    settings.WEBHOOK_QUEUE = "webhook-retry-test"
    start_worker(queues="webhook-retry-test", WEBHOOK_QUEUE="webhook-retry-test", WEBHOOK_RETRY_BASE_SECONDS="0.5")
    webhooks.create_webhook(project=project, url=receiver.url + "/hook", events=["batch.labeled"], created_by=alice)
    receiver.statuses = [500, 503]
    batch = make_batch(project, n=1)

    answer_all(project, bob)

    delivery = wait_for(
        lambda: Delivery.objects.filter(project=project, status=DeliveryStatus.DELIVERED).first(), what="the retry"
    )
    assert delivery.attempts == 3
    assert delivery.response_code == 200
    assert delivery.last_error == ""
    posts = receiver.posts("/hook")
    assert len(posts) == 3
    assert len({p["body"] for p in posts}) == 1  # the same bytes, signed the same way, on every attempt
    assert len({p["headers"]["X-Winnow-Signature"] for p in posts}) == 1
    assert json.loads(posts[0]["body"])["data"]["batch"]["id"] == batch.pk

    log = client_for(alice).get(f"/api/v1/projects/{project.pk}/webhooks/deliveries/")
    assert log.status_code == 200
    [row] = log.json()["results"]
    assert (row["event"], row["status"], row["attempts"], row["response_code"]) == ("batch.labeled", "delivered", 3, 200)


# --- delivery logic, in this process ----------------------------------------------------------


def _pending_delivery(project: Project, url: str, **fields: Any) -> Delivery:
    return Delivery.objects.create(project=project, event="batch.labeled", url=url, payload={"n": 1}, **fields)


@pytest.mark.django_db
def test_a_failed_attempt_is_scheduled_again_with_exponential_backoff(
    project: Project, receiver: Receiver, allow_localhost: None, settings: Any
) -> None:
    settings.WEBHOOK_QUEUE = "webhook-unconsumed-test"  # the retry message must not reach a live worker
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver.statuses = [500]
    delivery = _pending_delivery(project, receiver.url + "/hook")

    before = timezone.now()
    result = webhooks.deliver(delivery_id=delivery.pk, attempt=1)

    assert result is not None
    assert (result.status, result.attempts, result.response_code) == (DeliveryStatus.PENDING, 1, 500)
    assert result.last_error == "HTTP 500: receiver broke"
    assert before + timedelta(seconds=29) < result.next_attempt_at < timezone.now() + timedelta(seconds=31)
    assert webhooks.retry_delay(1) == 30
    assert webhooks.retry_delay(3) == 120
    assert webhooks.retry_delay(30) == settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS


@pytest.mark.django_db
def test_a_redelivered_message_sends_nothing_twice(project: Project, receiver: Receiver, allow_localhost: None) -> None:
    delivery = _pending_delivery(project, receiver.url + "/hook")

    assert webhooks.deliver(delivery_id=delivery.pk, attempt=1) is not None
    assert webhooks.deliver(delivery_id=delivery.pk, attempt=1) is None

    assert len(receiver.posts()) == 1
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED


@pytest.mark.django_db
def test_it_gives_up_when_the_retry_window_closes(project: Project, receiver: Receiver, allow_localhost: None,
                                                   settings: Any) -> None:
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 3600
    receiver.statuses = [502]
    delivery = _pending_delivery(project, receiver.url + "/hook")
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=2), attempts=7)

    result = webhooks.deliver(delivery_id=delivery.pk, attempt=8)

    assert (result.status, result.attempts, result.response_code) == (DeliveryStatus.FAILED, 8, 502)
    assert result.last_error.startswith("gave up after 8 attempts: HTTP 502")
    assert result.next_attempt_at is None


@pytest.mark.django_db
def test_the_address_check_runs_again_at_send_time(project: Project, settings: Any) -> None:
    """A receiver accepted once is refused when its address turns internal; nothing is sent."""
    settings.WEBHOOK_QUEUE = "webhook-unconsumed-test"
    delivery = _pending_delivery(project, "http://127.0.0.1:9/hook")

    result = webhooks.deliver(delivery_id=delivery.pk, attempt=1)

    assert result.response_code is None
    assert "internal address" in result.last_error
    assert result.status == DeliveryStatus.PENDING  # retried: an allowlist change may let it through


@pytest.mark.django_db
def test_no_listener_means_no_delivery(project: Project, make_batch: Callable[..., Batch], bob: Any) -> None:
    make_batch(project, n=2)

    answer_all(project, bob)

    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_an_event_of_a_rolled_back_change_is_never_recorded(project: Project, alice: Any, allow_localhost: None) -> None:
    webhooks.create_webhook(project=project, url="http://localhost:9/hook", events=["split.approved"], created_by=alice)

    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks.emit("split.approved", project, {"split": 1})
        raise RuntimeError("the change fails after the event")

    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_emit_goes_to_subscribed_active_webhooks_only(project: Project, alice: Any, allow_localhost: None) -> None:
    wanted = webhooks.create_webhook(project=project, url="http://localhost:9/a", events=["run.finished"], created_by=alice)
    webhooks.create_webhook(project=project, url="http://localhost:9/b", events=["split.approved"], created_by=alice)
    webhooks.create_webhook(project=project, url="http://localhost:9/c", events=["run.finished"], created_by=alice,
                            active=False)

    ids = webhooks.emit("run.finished", project, lambda: {"run": 7})

    [delivery] = Delivery.objects.filter(pk__in=ids)
    assert delivery.webhook_id == wanted.pk
    assert delivery.payload["event"] == "run.finished"
    assert delivery.payload["data"] == {"run": 7}
    with pytest.raises(ValueError, match="unknown webhook event"):
        webhooks.emit("run.exploded", project, {})


def test_signatures_are_hmac_sha256_of_the_exact_body() -> None:
    body = webhooks.body_bytes({"b": 1, "a": "é"})

    assert body == '{"a":"é","b":1}'.encode()
    assert webhooks.sign("secret", body) == "sha256=" + __import__("hmac").new(b"secret", body, "sha256").hexdigest()
    assert webhooks.verify("secret", body, webhooks.sign("secret", body))
    assert not webhooks.verify("other", body, webhooks.sign("secret", body))


# --- the webhook API --------------------------------------------------------------------------


@pytest.mark.django_db
def test_owners_create_list_update_and_delete_webhooks(project: Project, alice: Any, client_for: Any,
                                                       allow_localhost: None) -> None:
    api = client_for(alice)
    base = f"/api/v1/projects/{project.pk}/webhooks/"

    created = api.post(base, {"url": "http://localhost:8123/hook", "events": ["task.completed"]}, format="json")
    assert created.status_code == 201, created.json()
    hook_id = created.json()["id"]
    assert Webhook.objects.get(pk=hook_id).events == ["task.completed"]

    assert [h["id"] for h in api.get(base).json()] == [hook_id]
    patched = api.patch(f"{base}{hook_id}/", {"active": False, "events": ["batch.labeled", "batch.audited"]}, format="json")
    assert patched.status_code == 200
    assert Webhook.objects.get(pk=hook_id).active is False
    assert Webhook.objects.get(pk=hook_id).events == ["batch.labeled", "batch.audited"]

    secret = api.get(f"{base}secret/").json()
    assert secret["secret"] == project.webhook_secret
    rotated = api.post(f"{base}secret/").json()
    assert rotated["secret"] != project.webhook_secret
    assert Project.objects.get(pk=project.pk).webhook_secret == rotated["secret"]

    assert api.delete(f"{base}{hook_id}/").status_code == 204
    assert not Webhook.objects.filter(pk=hook_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "http://127.0.0.1:8000/hook", "events": ["task.completed"]}, "internal address"),
        ({"url": "http://169.254.169.254/latest", "events": ["task.completed"]}, "internal address"),
        ({"url": "ftp://example.com/hook", "events": ["task.completed"]}, "only http and https"),
        ({"url": "http://localhost:9/hook", "events": ["task.exploded"]}, "unknown events"),
        ({"url": "http://localhost:9/hook", "events": []}, "non-empty list"),
    ],
)
def test_bad_webhooks_are_refused_with_the_reason(project: Project, alice: Any, client_for: Any, body: dict[str, Any],
                                                  message: str, settings: Any) -> None:
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]

    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/webhooks/", body, format="json")

    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["mallory", "bob", "carol"])
def test_only_owners_see_webhooks_and_deliveries(project: Project, persona: str, request: pytest.FixtureRequest,
                                                 client_for: Any) -> None:
    api = client_for(request.getfixturevalue(persona))
    base = f"/api/v1/projects/{project.pk}/webhooks/"

    refused = 404 if persona == "mallory" else 403  # a stranger learns nothing, a member who may
    assert api.get(base).status_code == refused
    assert api.get(f"{base}deliveries/").status_code == refused
    assert api.get(f"{base}secret/").status_code == refused
    assert api.post(base, {"url": "http://example.com/", "events": ["task.completed"]}, format="json").status_code == refused
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_the_delivery_log_filters_and_redelivers(project: Project, alice: Any, client_for: Any) -> None:
    done = _pending_delivery(project, "http://localhost:9/a", status=DeliveryStatus.DELIVERED, attempts=1,
                             response_code=200)
    _pending_delivery(project, "http://localhost:9/b", status=DeliveryStatus.FAILED, attempts=30, response_code=500)
    api = client_for(alice)
    base = f"/api/v1/projects/{project.pk}/webhooks/deliveries/"

    assert [r["id"] for r in api.get(base, {"status": "delivered"}).json()["results"]] == [done.pk]
    assert api.get(base, {"status": "lost"}).status_code == 400
    again = api.post(f"{base}{done.pk}/redeliver/")

    assert again.status_code == 202
    copy = Delivery.objects.get(pk=again.json()["id"])
    assert (copy.status, copy.attempts, copy.url, copy.payload) == (DeliveryStatus.PENDING, 0, done.url, done.payload)
    assert Delivery.objects.get(pk=done.pk).status == DeliveryStatus.DELIVERED  # the log keeps the original
    pending = api.post(f"{base}{copy.pk}/redeliver/")
    assert pending.status_code == 409


@pytest.mark.django_db
def test_stalled_deliveries_are_queued_again(project: Project, settings: Any) -> None:
    settings.WEBHOOK_QUEUE = "webhook-unconsumed-test"
    stalled = _pending_delivery(project, "http://localhost:9/a", attempts=2,
                                next_attempt_at=timezone.now() - timedelta(minutes=5))
    _pending_delivery(project, "http://localhost:9/b", attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    _pending_delivery(project, "http://localhost:9/c", status=DeliveryStatus.DELIVERED,
                      next_attempt_at=timezone.now() - timedelta(minutes=5))

    assert webhooks.resend_stalled() == [stalled.pk]
    assert Delivery.objects.get(pk=stalled.pk).attempts == 2  # the attempt is claimed by the job, not here


@pytest.mark.django_db
def test_cancelling_the_last_open_task_reports_the_batch_labeled(project: Project, make_batch: Callable[..., Batch],
                                                                 bob: Any, alice: Any, allow_localhost: None) -> None:
    webhooks.create_webhook(project=project, url="http://localhost:9/hook", events=["batch.labeled"], created_by=alice)
    batch = make_batch(project, n=2)
    task = leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=task, annotator=bob, choice_id=project.choices.first().pk, duration_ms=10)
    assert Delivery.objects.count() == 0

    ingest.cancel_task(task=Task.objects.filter(batch=batch, status=TaskStatus.QUEUED).get())

    [delivery] = Delivery.objects.all()
    assert delivery.event == "batch.labeled"
    assert delivery.payload["data"]["counts"]["cancelled"] == 1


# --- events of the workflows other modules own (they call these hooks) ---------------------------


@pytest.mark.django_db
def test_batch_audited_carries_the_decision_and_the_figures(project: Project, make_batch: Callable[..., Batch],
                                                            bob: Any, carol: Any, alice: Any,
                                                            allow_localhost: None) -> None:
    from labeling import quality

    webhooks.create_webhook(project=project, url="http://localhost:9/hook", events=["batch.audited"], created_by=alice)
    Project.objects.filter(pk=project.pk).update(max_error_rate=0.99)
    batch = make_batch(project, n=2, kind="production")
    answer_all(project, bob)
    quality.draw_audit_sample(batch=Batch.objects.get(pk=batch.pk), size=2, seed=3)
    first, last = Task.objects.filter(batch=batch).order_by("id")
    quality.submit_audit(task=first, reviewer=carol, correct=True, choice_id=None)
    assert Delivery.objects.count() == 0

    quality.submit_audit(task=last, reviewer=carol, correct=True, choice_id=None)  # the last verdict decides

    [delivery] = Delivery.objects.all()
    data = delivery.payload["data"]
    assert (delivery.event, data["decision"], data["batch"]["winnow_status"]) == ("batch.audited", "accepted", "accepted")
    assert data["quality"]["audited"] == 2


@pytest.mark.django_db
def test_split_approved_describes_the_frozen_split(project: Project, alice: Any, allow_localhost: None) -> None:
    from tests.labeling.test_export_formats import approved_split

    webhooks.create_webhook(project=project, url="http://localhost:9/hook", events=["split.approved"], created_by=alice)

    split = approved_split(project, alice)  # approve_split emits the event

    [delivery] = Delivery.objects.all()
    assert delivery.payload["data"]["split"]["manifest_sha256"] == split.manifest_sha256
    assert delivery.payload["data"]["split"]["approved_by"] == "alice"


@pytest.mark.django_db
def test_a_completed_tasks_body_is_built_when_first_sent_and_kept(
    project: Project, make_batch: Callable[..., Batch], bob: Any, alice: Any, receiver: Receiver, allow_localhost: None
) -> None:
    """Completing a task only records the delivery; the worker builds the task's body once, then retries resend it."""
    webhooks.create_webhook(project=project, url=receiver.url + "/hook", events=["task.completed"], created_by=alice)
    make_batch(project, n=2)
    task = leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=task, annotator=bob, choice_id=project.choices.get(label="Anime").pk, duration_ms=5)
    [delivery] = Delivery.objects.all()
    assert delivery.payload["data"] == {webhooks.DEFERRED: {"builder": "task_completed", "id": task.pk}}

    webhooks.deliver(delivery_id=delivery.pk, attempt=1)

    delivery.refresh_from_db()
    assert delivery.payload["data"]["task_id"] == str(task.pk)
    assert delivery.payload["data"]["response"]["category"] == "Anime"
    assert json.loads(receiver.posts()[0]["body"]) == delivery.payload


@pytest.mark.django_db
def test_an_event_about_a_deleted_task_fails_without_sending(project: Project, make_batch: Callable[..., Batch],
                                                             receiver: Receiver, allow_localhost: None) -> None:
    make_batch(project, n=1)
    task = Task.objects.get()
    delivery = _pending_delivery(project, receiver.url + "/cb")
    Delivery.objects.filter(pk=delivery.pk).update(payload={webhooks.DEFERRED: {"builder": "task_completed", "id": task.pk}})
    Task.objects.filter(pk=task.pk).update(deleted_at=timezone.now())

    result = webhooks.deliver(delivery_id=delivery.pk, attempt=1)

    assert (result.status, result.last_error) == (DeliveryStatus.FAILED, "what the event reports no longer exists")
    assert receiver.posts() == []
