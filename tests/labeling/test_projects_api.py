"""Projects and their taxonomy through /api/v1/projects/."""

import pytest

from labeling.models import Choice, Membership, Project
from tests.conftest import CHOICES

# A member in another role is told who may (403); a stranger learns nothing, not even that it exists (404).
REFUSED = {"bob": 403, "carol": 403, "mallory": 404}

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_with_its_taxonomy_and_makes_the_creator_owner(alice, client_for):
    response = client_for(alice).post(
        "/api/v1/projects/", {"name": "P", "instructions": "Look closely", "choices": CHOICES}, format="json"
    )
    assert response.status_code == 201, response.data
    project = Project.objects.get(pk=response.data["id"])
    assert [c.label for c in project.choices.all()] == ["Photorealistic", "Anime", "Neither"]
    assert project.choices.get(label="Anime").domain == "B"
    assert project.choices.get(label="Anime").long_hint.startswith("Cel shading")
    assert Membership.objects.get(project=project, user=alice).role == "owner"
    assert response.data["role"] == "owner"


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([], "at least two choices"),
        ([{**CHOICES[0]}, {**CHOICES[1], "hotkey": "1"}], "hotkey '1' is used by both"),
        ([{**CHOICES[0]}, {**CHOICES[1], "domain": "C"}], "domain must be one of A, B or excluded"),
        ([{**CHOICES[0]}, {**CHOICES[1], "hotkey": "s"}], "reserved"),
        ([{**CHOICES[0]}, {**CHOICES[1], "label": "photorealistic"}], "label 'photorealistic' is used by both"),
    ],
)
def test_it_refuses_a_malformed_taxonomy(alice, client_for, choices, message):
    response = client_for(alice).post("/api/v1/projects/", {"name": "P", "choices": choices}, format="json")
    assert response.status_code == 400
    assert message in str(response.data)
    assert not Project.objects.exists()


def test_it_refuses_a_project_without_choices(alice, client_for):
    response = client_for(alice).post("/api/v1/projects/", {"name": "P"}, format="json")
    assert response.status_code == 400
    assert "taxonomy" in str(response.data["fields"]["choices"]) and response.data["code"] == "invalid"


def test_it_lists_only_the_callers_projects(project, mallory, bob, client_for):
    assert client_for(mallory).get("/api/v1/projects/").data["results"] == []
    assert [p["id"] for p in client_for(bob).get("/api/v1/projects/").data["results"]] == [project.pk]


def test_an_owner_reorders_and_swaps_hotkeys_without_losing_choice_ids(project, alice, client_for):
    before = {c.label: c.id for c in project.choices.all()}
    new = [
        {**CHOICES[1], "hotkey": "1"},
        {**CHOICES[0], "hotkey": "2", "long_hint": "Edited hint"},
        {**CHOICES[2]},
    ]
    response = client_for(alice).patch(f"/api/v1/projects/{project.pk}/", {"choices": new}, format="json")
    assert response.status_code == 200, response.data
    after = {c.label: (c.id, c.hotkey, c.order) for c in project.choices.all()}
    assert after["Anime"] == (before["Anime"], "1", 0)
    assert after["Photorealistic"] == (before["Photorealistic"], "2", 1)
    assert Choice.objects.get(pk=before["Photorealistic"]).long_hint == "Edited hint"


def test_it_refuses_to_delete_a_choice_that_has_answers(project, alice, bob, client_for, make_batch):
    from labeling import answers, leasing

    make_batch(project, 1)
    task = leasing.lease_next_task(project=project, annotator=bob)
    anime = project.choices.get(label="Anime")
    answers.submit_annotation(task=task, annotator=bob, choice_id=anime.pk, duration_ms=10)
    response = client_for(alice).patch(
        f"/api/v1/projects/{project.pk}/", {"choices": [CHOICES[0], CHOICES[2]]}, format="json"
    )
    assert response.status_code == 409
    assert "Anime" in response.data["detail"]
    assert project.choices.count() == 3


@pytest.mark.parametrize("who", ["bob", "carol", "mallory"])
def test_only_owners_may_change_a_project(project, client_for, who, request):
    user = request.getfixturevalue(who)
    response = client_for(user).patch(f"/api/v1/projects/{project.pk}/", {"name": "Mine now"}, format="json")
    assert response.status_code == REFUSED[who]
    project.refresh_from_db()
    assert project.name == "Anime vs photo"


def test_a_non_member_cannot_read_a_project(project, mallory, client_for):
    assert client_for(mallory).get(f"/api/v1/projects/{project.pk}/").status_code == 404


def test_an_annotator_reads_the_project_and_taxonomy(project, bob, client_for):
    response = client_for(bob).get(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 200
    assert response.data["role"] == "annotator"
    assert [c["hotkey"] for c in response.data["choices"]] == ["1", "2", "3"]


def test_delete_is_soft(project, alice, client_for):
    assert client_for(alice).delete(f"/api/v1/projects/{project.pk}/").status_code == 204
    project.refresh_from_db()
    assert project.deleted_at is not None
    assert client_for(alice).get(f"/api/v1/projects/{project.pk}/").status_code == 404


def test_settings_are_validated(project, alice, client_for):
    response = client_for(alice).patch(f"/api/v1/projects/{project.pk}/", {"overlap": 0, "max_error_rate": 2}, format="json")
    assert response.status_code == 400
    assert "overlap" in response.data["fields"] and "max_error_rate" in response.data["fields"]
    assert response.data["detail"].startswith("overlap: ")  # the body says which fields, in words too


def test_unauthenticated_requests_are_refused(project):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/projects/").status_code == 401


def test_a_token_is_issued_for_username_and_password(alice):
    from rest_framework.test import APIClient

    from tests.conftest import PASSWORD

    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert len(response.data["token"]) == 40
    wrong = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 400


def test_the_openapi_schema_and_docs_render(alice, client):
    client.force_login(alice)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/batches/{id}/tasks/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_the_openapi_schema_builds_without_warnings(tmp_path):
    """Untyped path parameters and colliding enum names become warnings; generated clients suffer from both."""
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    schema = (tmp_path / "schema.yml").read_text()
    assert "TaskStatusEnum:" in schema and "JobStatusEnum:" in schema and "StatusD" not in schema
