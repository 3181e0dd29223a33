"""Deliveries are signed as Standard Webhooks says, checked here with that spec's own library against what a
real HTTP server received: a replay with an old timestamp is refused, a rotation signs with both secrets for
the grace period, and Scale-style callbacks carry scale-callback-auth."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks import WebhookVerificationError

from labeling import webhooks
from labeling.models import Delivery, DeliveryStatus, Project, Webhook
from tests.labeling.test_webhooks import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    """A real HTTP server on loopback, reached as localhost, which the allow-list lets through."""
    settings.INGEST_ALLOWED_HOSTS = ["localhost"]
    with Receiver() as server:
        yield server


def _deliver(project: Project, url: str, *, hook: bool = True) -> dict[str, Any]:
    webhook = Webhook.objects.create(project=project, url=url, events=["batch.labeled"]) if hook else None
    delivery = Delivery.objects.create(project=project, webhook=webhook, event="batch.labeled", url=url,
                                       payload={"event": "batch.labeled", "data": {"n": 1, "name": "é"}})
    result = webhooks.deliver(delivery_id=delivery.pk, attempt=1)
    assert result is not None and result.status == DeliveryStatus.DELIVERED, result and result.last_error
    return {"delivery": delivery}


def _received(server: Receiver, path: str) -> tuple[bytes, dict[str, str]]:
    [post] = server.posts(path)
    return post["body"], post["headers"]


def test_a_received_delivery_verifies_with_the_standard_webhooks_library(
    project: Project, receiver: Receiver
) -> None:
    sent = _deliver(project, receiver.url + "/hook")
    body, headers = _received(receiver, "/hook")

    assert StandardWebhook(webhooks.standard_secret(project.webhook_secret)).verify(body, headers) == json.loads(body)
    assert headers["webhook-id"] == f"msg_{sent['delivery'].pk}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert webhooks.verify(project.webhook_secret, body, headers["X-Winnow-Signature"])  # the original header stays
    assert "scale-callback-auth" not in {k.lower() for k in headers}  # project webhooks are not Scale callbacks
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        StandardWebhook(webhooks.standard_secret(project.webhook_secret)).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(webhooks.standard_secret("another-secret")).verify(body, headers)


def test_a_replayed_delivery_with_an_old_timestamp_is_refused(project: Project) -> None:
    body = webhooks.body_bytes({"event": "batch.labeled"})
    old = int(time.time()) - 10 * 60
    receiver_side = StandardWebhook(webhooks.standard_secret(project.webhook_secret))

    fresh = webhooks.signature_headers(project, 7, body, callback=False)
    stale = webhooks.signature_headers(project, 7, body, callback=False, timestamp=old)

    receiver_side.verify(body, fresh)
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver_side.verify(body, stale)
    # Moving a captured signature to a fresh timestamp does not help: the timestamp is signed.
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver_side.verify(body, {**stale, "webhook-timestamp": fresh["webhook-timestamp"]})


def test_after_a_rotation_deliveries_carry_both_signatures_for_the_grace_period(
    project: Project, receiver: Receiver, alice: Any, client_for: Any, settings: Any,
) -> None:
    settings.WEBHOOK_SECRET_GRACE_HOURS = 24
    old_secret = project.webhook_secret

    rotated = client_for(alice).post(f"/api/v1/projects/{project.pk}/webhooks/secret/")

    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    project.refresh_from_db()
    assert (project.webhook_secret, project.webhook_secret_previous) == (new_secret, old_secret)
    assert rotated.json()["standard_secret"] == webhooks.standard_secret(new_secret)
    assert rotated.json()["previous_secret_valid_until"] is not None
    _deliver(project, receiver.url + "/during")
    body, headers = _received(receiver, "/during")
    assert len(headers["webhook-signature"].split(" ")) == 2
    StandardWebhook(webhooks.standard_secret(new_secret)).verify(body, headers)
    StandardWebhook(webhooks.standard_secret(old_secret)).verify(body, headers)  # receivers not yet switched
    assert webhooks.verify(new_secret, body, headers["X-Winnow-Signature"])
    assert webhooks.verify(old_secret, body, headers["X-Winnow-Signature-Previous"])

    Project.objects.filter(pk=project.pk).update(webhook_secret_rotated_at=timezone.now() - timedelta(hours=25))
    _deliver(project, receiver.url + "/after")
    body, headers = _received(receiver, "/after")
    assert len(headers["webhook-signature"].split(" ")) == 1
    StandardWebhook(webhooks.standard_secret(new_secret)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(webhooks.standard_secret(old_secret)).verify(body, headers)
    assert "X-Winnow-Signature-Previous" not in headers
    assert client_for(alice).get(f"/api/v1/projects/{project.pk}/webhooks/secret/").json()[
        "previous_secret_valid_until"] is None


def test_scale_style_callbacks_carry_scale_callback_auth(project: Project, receiver: Receiver, alice: Any,
                                                         client_for: Any) -> None:
    _deliver(project, receiver.url + "/callback", hook=False)
    body, headers = _received(receiver, "/callback")

    shown = client_for(alice).get(f"/api/v1/projects/{project.pk}/webhooks/secret/").json()["scale_callback_auth"]
    assert headers["scale-callback-auth"] == shown == webhooks.scale_callback_auth(project.webhook_secret)
    assert project.webhook_secret not in headers.values()  # the key that signs is never sent
    StandardWebhook(webhooks.standard_secret(project.webhook_secret)).verify(body, headers)


def test_only_owners_rotate_the_secret(project: Project, bob: Any, carol: Any, mallory: Any, client_for: Any) -> None:
    before = project.webhook_secret
    for user, code in ((bob, 403), (carol, 403), (mallory, 404)):
        assert client_for(user).post(f"/api/v1/projects/{project.pk}/webhooks/secret/").status_code == code
    project.refresh_from_db()
    assert (project.webhook_secret, project.webhook_secret_previous) == (before, "")
