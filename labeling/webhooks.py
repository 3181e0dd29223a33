"""Webhooks and callbacks: tell other systems when work is done, reliably and verifiably.

`emit(event, project, data)` records one `Delivery` per receiver (the project's active webhooks that
subscribe to the event, plus an optional `callback_url` of the task or batch) in the caller's
transaction, and queues the sends once that transaction commits: an event is never sent for a change
that rolled back, and never lost for one that committed. A Celery job sends each delivery as a JSON
POST signed as the Standard Webhooks spec says (standardwebhooks.com), so receivers can refuse a
replayed delivery by its timestamp, and with Winnow's original header for receivers written for it:

    webhook-id: msg_<delivery id>                  (the same on every attempt of a delivery)
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
    X-Winnow-Signature: sha256=<hex HMAC-SHA256 of the body>

Both use the project's `webhook_secret` (its bytes are the key; `standard_secret` writes it as the
`whsec_…` string Standard Webhooks libraries take). For WEBHOOK_SECRET_GRACE_HOURS after a rotation
deliveries are signed with the new and the previous secret (space-separated in `webhook-signature`,
`X-Winnow-Signature-Previous` beside the original header). Scale-style callbacks also carry
`scale-callback-auth`, a key derived from the secret, as Scale's do.

A receiver that does not answer 2xx is tried again after WEBHOOK_RETRY_BASE_SECONDS, then twice
that, and so on (at most WEBHOOK_RETRY_MAX_DELAY_SECONDS apart) until WEBHOOK_RETRY_WINDOW_SECONDS
(24 h) after the event; then the delivery is marked failed. Every URL passes the same address check
as URL ingestion (`assets.check_url`) before each attempt, so a webhook cannot reach the server's
own network unless INGEST_ALLOWED_HOSTS names the host.

Other modules call `emit` with one of `WebhookEvent`'s names; see docs/WEBHOOKS.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
import urllib3.exceptions
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from winnow import jobs as background
from winnow.exceptions import Conflict, InvalidInput

from . import assets, reports
from .models import Batch, Delivery, DeliveryStatus, Project, Split, Task, Webhook, WebhookEvent, new_secret
from .scale import shapes as scale_shapes  # Scale-style callbacks carry the task and batch as Scale shows them

log = logging.getLogger(__name__)

EVENTS = tuple(WebhookEvent.values)
SIGNATURE_HEADER = "X-Winnow-Signature"
MAX_WEBHOOKS_PER_PROJECT = 20
# A pending delivery whose next attempt is this overdue lost its message; the sweep sends it again.
STALL_GRACE = timedelta(seconds=60)

# A body built by the worker when the delivery is first attempted, then stored, so every retry sends
# the same bytes. Used on hot paths (a task completing on every answer) to keep the work out of the
# request: the marker is replaced by BUILDERS[builder](id).
DEFERRED = "winnow:deferred"


@dataclass(frozen=True)
class Deferred:
    builder: str
    object_id: int


Data = dict[str, Any] | Callable[[], dict[str, Any]] | Deferred


# --- signing ----------------------------------------------------------------------------------


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, key-sorted JSON, the same on every attempt."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sign(secret: str, body: bytes) -> str:
    """The X-Winnow-Signature value for `body`; receivers compare it with `hmac.compare_digest`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header or "")


def standard_secret(secret: str) -> str:
    """The secret as Standard Webhooks libraries take it: `whsec_` and the base64 of the key's bytes."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `webhook-signature` entry: v1, then the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"."""
    digest = hmac.new(secret.encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def scale_callback_auth(secret: str) -> str:
    """The `scale-callback-auth` key of a project's callbacks: derived from the secret (so it rotates with
    it) without giving the signing key away to whoever sees a request's headers."""
    return hmac.new(secret.encode(), b"scale-callback-auth", hashlib.sha256).hexdigest()


def signing_secrets(project: Project) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one during the grace
    period after a rotation."""
    secrets = [project.webhook_secret]
    rotated = project.webhook_secret_rotated_at
    grace = timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    if project.webhook_secret_previous and rotated is not None and timezone.now() < rotated + grace:
        secrets.append(project.webhook_secret_previous)
    return secrets


def signature_headers(project: Project, delivery_id: int, body: bytes, *, callback: bool,
                      timestamp: int | None = None) -> dict[str, str]:
    """Every signing header of one attempt (see the module's docstring)."""
    secrets = signing_secrets(project)
    msg_id = f"msg_{delivery_id}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign_standard(s, msg_id, timestamp, body) for s in secrets),
        SIGNATURE_HEADER: sign(secrets[0], body),
    }
    if len(secrets) > 1:
        headers[SIGNATURE_HEADER + "-Previous"] = sign(secrets[1], body)
    if callback:
        headers["scale-callback-auth"] = scale_callback_auth(secrets[0])
    return headers


# --- receivers --------------------------------------------------------------------------------


def check_receiver_url(url: Any, *, field: str = "url") -> str:
    """Refuse a receiver URL that is not http(s) or that points into the server's network (400)."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"{field} is required: the http(s) URL that receives the POST")
    if len(url) > 2000:
        raise InvalidInput(f"{field} is longer than 2000 characters")
    try:
        assets.check_url(url)
    except assets.Rejected as exc:
        raise InvalidInput(f"{field} {url!r} cannot receive callbacks: {exc}", code="bad_url") from exc
    return url


def _check_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInput(f"events must be a non-empty list of event names, from {list(EVENTS)}")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise InvalidInput(f"unknown events {unknown}; choose from {list(EVENTS)}")
    return sorted(set(events), key=EVENTS.index)


def create_webhook(*, project: Project, url: str, events: list[str], created_by: AbstractBaseUser,
                   description: str = "", active: bool = True) -> Webhook:
    """Subscribe `url` to some of the project's events. The URL is checked like an ingestion URL (400)."""
    url = check_receiver_url(url)
    events = _check_events(events)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).values_list("id").get()
        if project.webhooks.count() >= MAX_WEBHOOKS_PER_PROJECT:
            raise Conflict(f"a project may have at most {MAX_WEBHOOKS_PER_PROJECT} webhooks; delete one first")
        return Webhook.objects.create(project=project, url=url, events=events, description=description,
                                      active=active, created_by=created_by)


def update_webhook(*, webhook: Webhook, fields: dict[str, Any]) -> Webhook:
    """Change a webhook's url, events, description or active flag. Deliveries already made keep their URL."""
    if "url" in fields:
        fields["url"] = check_receiver_url(fields["url"])
    if "events" in fields:
        fields["events"] = _check_events(fields["events"])
    for name, value in fields.items():
        setattr(webhook, name, value)
    webhook.save(update_fields=list(fields) or None)
    return webhook


def rotate_secret(*, project: Project) -> Project:
    """Give the project a new signing secret. Deliveries not yet sent are signed with the new one, and for
    WEBHOOK_SECRET_GRACE_HOURS with the one it replaces as well. Takes a row lock on the project, so two
    rotations at once keep a chain (the second's previous secret is the first's new one)."""
    with transaction.atomic():
        current = Project.objects.select_for_update().filter(pk=project.pk).values_list("webhook_secret", flat=True).get()
        Project.objects.filter(pk=project.pk).update(
            webhook_secret=new_secret(), webhook_secret_previous=current, webhook_secret_rotated_at=timezone.now()
        )
    project.refresh_from_db(fields=["webhook_secret", "webhook_secret_previous", "webhook_secret_rotated_at"])
    return project


# --- emitting ---------------------------------------------------------------------------------


def emit(event: str, project: Project, data: Data, *, callback_url: str = "") -> list[int]:
    """Record `event` for the project's subscribed webhooks and for `callback_url`; send after commit.

    `data` is the event's body, or a function that builds it (called only when someone listens, so
    an event without receivers costs one query), or a `Deferred` the worker builds when it first
    sends. A `callback_url` (Scale's per-task or per-batch callback) receives `data` itself; project
    webhooks receive it wrapped in an envelope with the event's name, time and project. Returns the
    ids of the deliveries recorded.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; add it to WebhookEvent first")
    hooks = [h for h in Webhook.objects.filter(project_id=project.pk, active=True) if event in h.events]
    if not hooks and not callback_url:
        return []
    if isinstance(data, Deferred):
        body: dict[str, Any] = {DEFERRED: {"builder": data.builder, "id": data.object_id}}
    else:
        body = data() if callable(data) else data
    envelope = {
        "event": event,
        "created_at": timezone.now().isoformat(),
        "project": {"id": project.pk, "name": project.name},
        "data": body,
    }
    rows = [Delivery(project_id=project.pk, webhook=h, event=event, url=h.url, payload=envelope) for h in hooks]
    if callback_url:
        rows.append(Delivery(project_id=project.pk, event=event, url=callback_url, payload=body))
    Delivery.objects.bulk_create(rows)
    ids = [d.pk for d in rows]
    transaction.on_commit(lambda: _enqueue_first_attempts(ids))
    return ids


def _enqueue_first_attempts(ids: list[int]) -> None:
    for delivery_id in ids:
        _enqueue(delivery_id, attempt=1)


def _enqueue(delivery_id: int, *, attempt: int, countdown: float = 0) -> None:
    from . import jobs  # jobs imports this module; import here to keep the graph one-way

    jobs.deliver_webhook.apply_async((delivery_id, attempt), countdown=countdown or None, queue=settings.WEBHOOK_QUEUE)


# --- delivering -------------------------------------------------------------------------------


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, capped."""
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS)


def deliver(*, delivery_id: int, attempt: int) -> Delivery | None:
    """Make attempt number `attempt` of a delivery; schedule the next one if it fails.

    A background job (winnow/jobs.py): the attempt is claimed pending -> sending by a conditional
    UPDATE on the attempt count, so a redelivered or duplicated message sends nothing twice, and it
    beats while it sends. Returns None when the attempt was not ours to make.
    """
    claimed = Delivery.objects.filter(attempts=attempt - 1).claim(
        delivery_id, attempts=attempt, last_attempt_at=timezone.now(), next_attempt_at=None
    )
    if not claimed:
        return None
    mine = Delivery.objects.filter(attempts=attempt)  # an attempt taken over by the next one writes nothing
    background.run_claimed(background.JobBeat(mine, delivery_id), lambda: _attempt(mine, delivery_id, attempt))
    return Delivery.objects.get(pk=delivery_id)


def _attempt(mine: QuerySet[Delivery], delivery_id: int, attempt: int) -> None:
    mine = mine.filter(pk=delivery_id, status=DeliveryStatus.SENDING)
    delivery = Delivery.objects.select_related("project").get(pk=delivery_id)
    try:
        _expand(delivery)
    except ObjectDoesNotExist:
        mine.update(status=DeliveryStatus.FAILED, next_attempt_at=None, finished_at=timezone.now(),
                    last_error="what the event reports no longer exists")
        return
    code, error = _post(delivery)
    now = timezone.now()
    if code is not None and 200 <= code < 300:
        mine.update(status=DeliveryStatus.DELIVERED, response_code=code, last_error="", delivered_at=now,
                    finished_at=now, next_attempt_at=None)
    else:
        delay = retry_delay(attempt)
        deadline = delivery.created_at + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_SECONDS)
        if now + timedelta(seconds=delay) > deadline:
            mine.update(
                status=DeliveryStatus.FAILED, response_code=code, next_attempt_at=None, finished_at=now,
                last_error=f"gave up after {attempt} attempts: {error}"[:500],
            )
        elif mine.update(status=DeliveryStatus.PENDING, response_code=code, last_error=error[:500],
                         next_attempt_at=now + timedelta(seconds=delay)):
            _enqueue(delivery_id, attempt=attempt + 1, countdown=delay)


def _expand(delivery: Delivery) -> None:
    """Build a deferred body now and store it, so this and every later attempt send the same bytes."""
    payload = delivery.payload
    in_envelope = isinstance(payload.get("data"), dict) and DEFERRED in payload["data"]
    marker = (payload["data"] if in_envelope else payload).get(DEFERRED)
    if marker is None:
        return
    body = BUILDERS[marker["builder"]](marker["id"])
    payload = {**payload, "data": body} if in_envelope else body
    Delivery.objects.filter(pk=delivery.pk).update(payload=payload)
    delivery.payload = payload


def _post(delivery: Delivery) -> tuple[int | None, str]:
    """POST the delivery once. Returns (HTTP status or None, what went wrong or "")."""
    body = body_bytes(delivery.payload)
    try:
        assets.check_url(delivery.url)  # again at send time: the name may resolve elsewhere now
    except assets.Rejected as exc:
        return None, f"refused: {exc}"
    session = assets.download_session()  # no proxies; the address each connection reaches is checked too
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Winnow webhooks",
        "X-Winnow-Event": delivery.event,
        "X-Winnow-Delivery": str(delivery.pk),
        # A delivery without a webhook goes to a task's or batch's callback_url: Scale's callbacks.
        **signature_headers(delivery.project, delivery.pk, body, callback=delivery.webhook_id is None),
    }
    # The timeout bounds the whole exchange, so a receiver that answers a byte at a time cannot hold the worker.
    with session, assets.Deadline(settings.WEBHOOK_TIMEOUT_SECONDS) as deadline:
        try:
            with session.post(delivery.url, data=body, headers=headers, timeout=deadline.remaining(),
                              allow_redirects=False, stream=True) as response:
                code = response.status_code
                if 200 <= code < 300:
                    return code, ""
                if response.is_redirect:
                    return code, f"HTTP {code}: redirects are not followed; point the webhook at the final URL"
                excerpt = response.raw.read(300, decode_content=True).decode("utf-8", "replace").strip()
                return code, f"HTTP {code}" + (f": {excerpt}" if excerpt else "")
        except assets.Rejected as exc:  # the name resolved inward after the check above (DNS rebinding)
            return None, f"refused: {exc}"
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            if deadline.expired or isinstance(exc, requests.Timeout):
                return None, f"no answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
            return None, f"could not connect: {exc.__class__.__name__}"


def redeliver(*, delivery: Delivery) -> Delivery:
    """Send a past delivery's payload again, as a new delivery (the log keeps both)."""
    if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
        raise Conflict("this delivery is still being tried; wait for it to be delivered or fail")
    copy = Delivery.objects.create(project_id=delivery.project_id, webhook_id=delivery.webhook_id, event=delivery.event,
                                   url=delivery.url, payload=delivery.payload)
    transaction.on_commit(lambda: _enqueue(copy.pk, attempt=1))
    return copy


def resend_stalled() -> list[int]:
    """Queue again the deliveries whose attempt was lost: a sending one whose worker stopped beating
    goes back to pending, and a pending one whose next attempt is overdue (its message lost) is sent
    again. Every worker's sweep runs this (winnow/jobs.py). Duplicates are harmless: each attempt is
    claimed by its number. Returns the ids queued again.
    """
    requeued = Delivery.objects.requeue_stale(next_attempt_at=timezone.now())
    overdue = Delivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lt=timezone.now() - STALL_GRACE
    ).exclude(pk__in=requeued).values_list("id", flat=True)
    resent = [*requeued, *overdue.iterator()]
    for delivery_id, attempts in Delivery.objects.filter(pk__in=resent).values_list("id", "attempts"):
        _enqueue(delivery_id, attempt=attempts + 1)
    return resent


# --- event bodies -----------------------------------------------------------------------------


def task_completed_data(task_id: int) -> dict[str, Any]:
    """The body Scale sends to a task's callback_url: the task, its response and its id."""

    task = scale_shapes.task_queryset().get(pk=task_id)
    doc = scale_shapes.task_json(task, base_url=settings.WINNOW_PUBLIC_URL)
    return {"task": doc, "response": doc.get("response"), "task_id": doc["task_id"]}


def batch_data(batch: Batch) -> dict[str, Any]:
    """A batch with its task counts, for batch events (labeled, audited)."""
    return {"batch": scale_shapes.batch_json(batch), "counts": batch.counts()}


def task_completed(task: Task) -> None:
    """Emit task.completed for a task that has just completed (inside the caller's transaction).

    This runs on every answer that completes a task, so the body (the task as Scale shows it) is
    built by the worker when it first sends, not here.
    """
    emit(WebhookEvent.TASK_COMPLETED, task.project, Deferred("task_completed", task.pk), callback_url=task.callback_url)


def batch_labeled(batch_id: int) -> None:
    """Emit batch.labeled for a batch whose every task has its answer."""
    batch = Batch.objects.select_related("project").get(pk=batch_id)
    emit(WebhookEvent.BATCH_LABELED, batch.project, lambda: batch_data(batch), callback_url=batch.callback_url)


# One-line hooks for the workflows other modules own; each is called where the transition is won.


def batch_audited(batch: Batch) -> None:
    """Emit batch.audited once an audit decided a batch (status accepted or rejected), with the figures."""
    batch = Batch.objects.select_related("project").get(pk=batch.pk)
    emit(WebhookEvent.BATCH_AUDITED, batch.project,
         lambda: {**batch_data(batch), "decision": batch.status, "quality": reports.batch_quality(batch=batch)},
         callback_url=batch.callback_url)


def split_approved(split: Split) -> None:
    """Emit split.approved for a split an owner has just approved (frozen for training)."""
    split = Split.objects.select_related("project", "approved_by").get(pk=split.pk)
    emit(WebhookEvent.SPLIT_APPROVED, split.project, lambda: {"split": {
        "id": split.pk, "version": split.version, "counts": split.counts, "manifest_sha256": split.manifest_sha256,
        "approved_by": split.approved_by.get_username() if split.approved_by else None,
        "approved_at": split.approved_at.isoformat() if split.approved_at else None,
    }})


BUILDERS: dict[str, Callable[[int], dict[str, Any]]] = {"task_completed": task_completed_data}
