"""Stored images are private to signed-in users; the health check answers."""

import pytest

pytestmark = pytest.mark.django_db


def test_images_need_a_signed_in_user(project, bob, client, client_for, make_batch):
    task = make_batch(project, 1).tasks.get()
    url = f"/media/{task.asset.file.name}"
    assert client.get(url).status_code == 401
    assert client_for(bob).get(url).status_code == 200
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_paths_outside_the_media_folder_are_404(bob, client):
    client.force_login(bob)
    assert client.get("/media/../settings.py").status_code == 404
    assert client.get("/media/assets/none.png").status_code == 404


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
