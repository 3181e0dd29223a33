"""Pausing a member by hand: POST /api/v1/projects/{id}/annotators/{username}/pause/."""

import pytest

from labeling import leasing
from labeling.models import Lease, Membership
from winnow.exceptions import NotAllowed

pytestmark = pytest.mark.django_db


def url(project, username):
    return f"/api/v1/projects/{project.pk}/annotators/{username}/pause/"


def test_an_owner_pauses_an_annotator_whose_leases_are_released_until_reinstated(project, alice, bob, client_for, make_batch):
    make_batch(project, 3)
    assert leasing.lease_next_task(project=project, annotator=bob) is not None
    response = client_for(alice).post(url(project, "bob"), {"reason": "answers too fast"}, format="json")
    assert response.status_code == 200
    assert response.data == {"username": "bob", "paused": True, "paused_reason": "answers too fast"}
    assert Membership.objects.get(project=project, user=bob).paused_at is not None
    assert not Lease.objects.filter(annotator=bob).exists()
    with pytest.raises(NotAllowed):
        leasing.lease_next_task(project=project, annotator=bob)
    row = next(r for r in client_for(alice).get(f"/api/v1/projects/{project.pk}/annotators/").data if r["username"] == "bob")
    assert row["paused"] and row["paused_reason"] == "answers too fast"

    assert client_for(alice).post(f"/api/v1/projects/{project.pk}/annotators/bob/reinstate/").status_code == 200
    assert leasing.lease_next_task(project=project, annotator=bob) is not None


def test_without_a_reason_the_annotator_reads_who_paused_them(project, alice, bob, client_for):
    response = client_for(alice).post(url(project, "bob"), {}, format="json")
    assert response.status_code == 200
    assert client_for(bob).get(f"/api/v1/projects/{project.pk}/me/").data["paused_reason"] == "paused by the project's owner"


def test_owners_are_not_paused(project, alice, client_for):
    response = client_for(alice).post(url(project, "alice"), {}, format="json")
    assert response.status_code == 409 and response.data["code"] == "owner_not_paused"
    assert Membership.objects.get(project=project, user=alice).paused_at is None


def test_an_unknown_member_or_field_is_refused(project, alice, client_for):
    assert client_for(alice).post(url(project, "ghost"), {}, format="json").status_code == 404
    response = client_for(alice).post(url(project, "bob"), {"until": "tomorrow"}, format="json")
    assert response.status_code == 400 and "until" in response.data["fields"]
    assert Membership.objects.get(project=project, user__username="bob").paused_at is None


def test_only_owners_pause_and_a_non_member_gets_404(project, bob, carol, mallory, client_for):
    assert client_for(carol).post(url(project, "bob"), {}, format="json").status_code == 403
    assert client_for(bob).post(url(project, "dave"), {}, format="json").status_code == 403
    assert client_for(mallory).post(url(project, "bob"), {}, format="json").status_code == 404
    assert not Membership.objects.filter(project=project, paused_at__isnull=False).exists()
