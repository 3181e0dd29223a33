"""Under /api/ every refusal is JSON in one shape: detail and code (plus fields for validation)."""

import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_api_route_answers_json_404_not_a_page(client_for, alice):
    response = client_for(alice).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "there is no such API route: see /api/docs/ for the routes and their methods",
                               "code": "not_found"}


def test_a_method_a_route_does_not_take_answers_json_405_with_allow(client_for, alice, project):
    response = client_for(alice).delete("/api/v1/auth/token/")
    assert response.status_code == 405
    body = response.json()
    assert body["code"] == "method_not_allowed" and "DELETE" in body["detail"]
    assert "POST" in response["Allow"]


def test_a_missing_object_and_a_stranger_get_the_same_json_404(client_for, mallory, project):
    missing = client_for(mallory).get("/api/v1/projects/999999/")
    hidden = client_for(mallory).get(f"/api/v1/projects/{project.pk}/")
    assert missing.status_code == hidden.status_code == 404
    assert missing.json()["code"] == hidden.json()["code"] == "not_found"
    assert set(hidden.json()) == {"detail", "code"}


def test_pages_keep_their_html_404(client, alice):
    client.force_login(alice)
    response = client.get("/projects/999999/annotate/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
