"""Project membership through /api/v1/projects/{id}/members/."""

import pytest

from labeling.models import Membership

# A member in another role is told who may (403); a stranger learns nothing, not even that it exists (404).
REFUSED = {"bob": 403, "carol": 403, "mallory": 404}

pytestmark = pytest.mark.django_db


def test_an_owner_adds_an_existing_user_with_a_role(project, alice, mallory, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/members/", {"username": "mallory", "role": "annotator"})
    assert response.status_code == 201
    assert Membership.objects.get(project=project, user=mallory).role == "annotator"
    listing = client_for(mallory).get(f"/api/v1/projects/{project.pk}/members/")
    assert {m["username"] for m in listing.data} == {"alice", "bob", "dave", "carol", "mallory"}


def test_adding_an_unknown_user_says_how_to_create_one(project, alice, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/members/", {"username": "ghost", "role": "annotator"})
    assert response.status_code == 404
    assert "createuser" in response.data["detail"]


def test_a_bad_role_is_refused(project, alice, client_for):
    response = client_for(alice).post(f"/api/v1/projects/{project.pk}/members/", {"username": "bob", "role": "boss"})
    assert response.status_code == 400
    assert Membership.objects.get(project=project, user__username="bob").role == "annotator"


def test_an_owner_removes_a_member(project, alice, bob, client_for):
    response = client_for(alice).delete(f"/api/v1/projects/{project.pk}/members/bob/")
    assert response.status_code == 204
    assert not Membership.objects.filter(project=project, user=bob).exists()
    assert client_for(bob).get(f"/api/v1/projects/{project.pk}/").status_code == 404


def test_the_last_owner_cannot_be_removed(project, alice, client_for):
    response = client_for(alice).delete(f"/api/v1/projects/{project.pk}/members/alice/")
    assert response.status_code == 409
    assert Membership.objects.filter(project=project, user=alice, role="owner").exists()


@pytest.mark.parametrize("who", ["bob", "carol", "mallory"])
def test_only_owners_manage_members(project, client_for, who, request):
    client = client_for(request.getfixturevalue(who))
    assert client.post(f"/api/v1/projects/{project.pk}/members/", {"username": who, "role": "owner"}).status_code == REFUSED[who]
    assert client.delete(f"/api/v1/projects/{project.pk}/members/dave/").status_code == REFUSED[who]
    assert not Membership.objects.filter(project=project, role="owner").exclude(user__username="alice").exists()
