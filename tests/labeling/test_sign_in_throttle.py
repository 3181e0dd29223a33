"""Password guessing: failed attempts at the API token, /login/, the admin's sign-in and /signup/ are counted
per client address and per username (in Redis, as in production); past the limit the door answers 429 with
Retry-After, before the password is checked, and logs it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import PASSWORD
from winnow import settings as winnow_settings

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"


@pytest.fixture
def limits(settings: Any) -> Any:
    settings.LOGIN_RATE_PER_IP = "5/min"
    settings.LOGIN_RATE_PER_USERNAME = "20/hour"
    return settings


def test_failed_token_requests_from_one_address_end_in_429_even_with_the_right_password(
    limits: Any, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = APIClient()
    for i in range(5):
        assert client.post(TOKEN, {"username": f"guess-{i}", "password": "wrong"}).status_code == 400

    with caplog.at_level(logging.WARNING, logger="winnow.security"):
        refused = client.post(TOKEN, {"username": "alice", "password": PASSWORD})

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "too many failed attempts" in refused.json()["detail"]
    assert not Token.objects.filter(user=alice).exists()
    assert any("token throttled" in r.getMessage() and "alice" in r.getMessage() for r in caplog.records)
    # Another address is not held back by this one's failures.
    assert APIClient(REMOTE_ADDR="198.51.100.7").post(TOKEN, {"username": "alice", "password": PASSWORD}).status_code == 200


def test_guesses_at_one_username_from_many_addresses_end_in_429(limits: Any, alice: Any) -> None:
    limits.LOGIN_RATE_PER_USERNAME = "3/hour"
    for i in range(3):
        client = APIClient(REMOTE_ADDR=f"203.0.113.{i}")
        assert client.post(TOKEN, {"username": "Alice", "password": "wrong"}, format="json").status_code == 400

    refused = APIClient(REMOTE_ADDR="203.0.113.99").post(TOKEN, {"username": "alice", "password": PASSWORD})

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 60  # the per-username window is an hour
    assert APIClient().post(TOKEN, {"username": "bob-not-alice", "password": "x"}).status_code == 400


def test_successful_sign_ins_do_not_count(limits: Any, alice: Any) -> None:
    client = APIClient()
    for _ in range(8):
        assert client.post(TOKEN, {"username": "alice", "password": PASSWORD}).status_code == 200


def test_a_forged_forwarded_for_header_does_not_give_a_fresh_address(limits: Any) -> None:
    client = APIClient()
    for i in range(5):
        client.post(TOKEN, {"username": f"u{i}", "password": "x"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")

    refused = client.post(TOKEN, {"username": "u9", "password": "x"}, HTTP_X_FORWARDED_FOR="192.0.2.200")

    assert refused.status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(limits: Any) -> None:
    limits.REST_FRAMEWORK = {**limits.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = APIClient(REMOTE_ADDR="10.0.0.2")
    for i in range(5):
        proxy.post(TOKEN, {"username": f"u{i}", "password": "x"}, HTTP_X_FORWARDED_FOR="192.0.2.1")

    assert proxy.post(TOKEN, {"username": "u", "password": "x"}, HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 429
    assert proxy.post(TOKEN, {"username": "u", "password": "x"}, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 400


def test_the_sign_in_page_is_throttled_the_same_way(limits: Any, alice: Any) -> None:
    client = Client()
    for _ in range(5):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200

    refused = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Wait" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_admin_sign_in_is_throttled(limits: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("root", password=PASSWORD, is_staff=True)
    client = Client()
    for _ in range(5):
        assert client.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code == 200

    refused = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session


def test_sign_up_counts_every_attempt(limits: Any, django_user_model: Any) -> None:
    limits.WINNOW_SIGNUP_ENABLED = True
    client = Client()
    for i in range(5):
        response = client.post("/signup/", {"username": f"new{i}", "password1": "a-long-password-1",
                                            "password2": "a-long-password-1"})
        assert response.status_code == 302
        client.logout()

    refused = client.post("/signup/", {"username": "new9", "password1": "a-long-password-1",
                                       "password2": "a-long-password-1"})

    assert refused.status_code == 429
    assert not django_user_model.objects.filter(username="new9").exists()
    assert django_user_model.objects.filter(username__startswith="new").count() == 5


def test_a_limit_can_be_turned_off(settings: Any) -> None:
    settings.LOGIN_RATE_PER_IP = None
    settings.LOGIN_RATE_PER_USERNAME = None
    client = APIClient()
    for _ in range(15):
        assert client.post(TOKEN, {"username": "x", "password": "y"}).status_code == 400


@pytest.mark.parametrize("value", ["10", "ten/min", "10/week", "0/min", "-1/min"])
def test_a_bad_rate_fails_at_start_up(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_RATE_PER_IP", value)
    with pytest.raises(ImproperlyConfigured, match="LOGIN_RATE_PER_IP must be a rate such as 10/min"):
        winnow_settings.env_rate("LOGIN_RATE_PER_IP", "10/min")


@pytest.mark.parametrize(("url", "backend"), [
    ("", "locmem.LocMemCache"), ("locmem://", "locmem.LocMemCache"), ("redis://127.0.0.1:6379/2", "redis.RedisCache"),
    ("file:///tmp/winnow-cache", "filebased.FileBasedCache"),
])
def test_cache_url_picks_the_backend(url: str, backend: str) -> None:
    assert winnow_settings.cache_settings(url)["BACKEND"] == f"django.core.cache.backends.{backend}"


def test_a_bad_cache_url_fails_at_start_up() -> None:
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL must be"):
        winnow_settings.cache_settings("memcached://x")
