"""Self-service sign-up exists only when the administrator turns it on."""

import pytest

pytestmark = pytest.mark.django_db


def test_signup_is_off_by_default(client, django_user_model):
    assert client.get("/signup/").status_code == 404
    response = client.post("/signup/", {"username": "zed", "password1": "a-long-password-1", "password2": "a-long-password-1"})
    assert response.status_code == 404
    assert not django_user_model.objects.filter(username="zed").exists()


def test_signup_creates_an_account_when_enabled(client, settings, django_user_model):
    settings.WINNOW_SIGNUP_ENABLED = True
    response = client.post("/signup/", {"username": "zed", "password1": "a-long-password-1", "password2": "a-long-password-1"})
    assert response.status_code == 302
    assert django_user_model.objects.get(username="zed").check_password("a-long-password-1")
    mismatch = client.post("/signup/", {"username": "yan", "password1": "a-long-password-1", "password2": "other-password-2"})
    assert mismatch.status_code == 200
    assert not django_user_model.objects.filter(username="yan").exists()
