"""New accounts through POST /api/v1/projects/{id}/accounts/ (the members page's "Create a new account")."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from labeling.models import Membership

pytestmark = pytest.mark.django_db
User = get_user_model()


def url(project):
    return f"/api/v1/projects/{project.pk}/accounts/"


def test_an_owner_creates_an_account_whose_password_is_shown_once_and_signs_in(project, alice, client_for):
    response = client_for(alice).post(url(project), {"username": "erin", "role": "annotator"}, format="json")
    assert response.status_code == 201
    assert set(response.data) == {"username", "role", "password", "login_url"}
    assert response.data["login_url"].endswith("/login/")
    password = response.data["password"]
    assert len(password) >= 16
    erin = User.objects.get(username="erin")
    assert Membership.objects.get(project=project, user=erin).role == "annotator"
    assert password not in erin.password and erin.check_password(password)
    assert APIClient().login(username="erin", password=password)
    listing = client_for(alice).get(f"/api/v1/projects/{project.pk}/members/")
    assert "password" not in str(listing.data)


def test_a_taken_username_is_refused_and_nothing_changes(project, alice, bob, client_for):
    before = bob.password
    response = client_for(alice).post(url(project), {"username": "BOB", "role": "reviewer"}, format="json")
    assert response.status_code == 409
    assert response.data["code"] == "username_taken" and "add it as a member" in response.data["detail"]
    bob.refresh_from_db()
    assert bob.password == before
    assert Membership.objects.get(project=project, user=bob).role == "annotator"


@pytest.mark.parametrize("body, field", [
    ({"username": "has space", "role": "annotator"}, "detail"),
    ({"username": "", "role": "annotator"}, "username"),
    ({"username": "erin", "role": "boss"}, "role"),
    ({"username": "erin", "role": "annotator", "is_staff": True}, "is_staff"),
])
def test_bad_bodies_are_refused_naming_the_field(project, alice, client_for, body, field):
    response = client_for(alice).post(url(project), body, format="json")
    assert response.status_code == 400
    assert field in (response.data if field == "detail" else response.data["fields"])
    assert not User.objects.filter(username__in=["erin", "has space"]).exists()


def test_members_who_are_not_owners_are_refused(project, bob, carol, client_for):
    for who in (bob, carol):
        assert client_for(who).post(url(project), {"username": "erin", "role": "owner"}, format="json").status_code == 403
    assert not User.objects.filter(username="erin").exists()


def test_a_non_member_gets_404_as_for_a_project_that_does_not_exist(project, mallory, client_for):
    assert client_for(mallory).post(url(project), {"username": "erin"}, format="json").status_code == 404
    assert client_for(mallory).post("/api/v1/projects/999999/accounts/", {"username": "erin"}, format="json").status_code == 404
    assert APIClient().post(url(project), {"username": "erin"}, format="json").status_code == 401
    assert not User.objects.filter(username="erin").exists()
