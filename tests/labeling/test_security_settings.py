"""Cookie flags and the proxy header, as the settings compute them from the environment at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from tests.conftest import PASSWORD
from winnow import settings as winnow_settings

REPO = Path(__file__).resolve().parents[2]
NAMES = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
         "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SECURE_PROXY_SSL_HEADER"]


def settings_with(**env: str) -> dict[str, Any]:
    """Import winnow.settings in a fresh interpreter with `env` and read the cookie settings back."""
    clean = {k: v for k, v in os.environ.items() if k not in NAMES and k != "DEBUG"}
    code = f"import json, winnow.settings as s; print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_production_cookies_are_secure_http_only_and_lax() -> None:
    values = settings_with(DEBUG="0", SECRET_KEY="s" * 50)

    assert values == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
                      "CSRF_COOKIE_HTTPONLY": True, "SESSION_COOKIE_SAMESITE": "Lax", "CSRF_COOKIE_SAMESITE": "Lax",
                      "SECURE_PROXY_SSL_HEADER": None}  # no proxy header is trusted unless one is named


def test_the_environment_sets_the_proxy_header_and_plain_http_cookies() -> None:
    values = settings_with(DEBUG="0", SECRET_KEY="s" * 50, SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0",
                           SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https")

    assert (values["SESSION_COOKIE_SECURE"], values["CSRF_COOKIE_SECURE"]) == (False, False)
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings_with(DEBUG="1")["SESSION_COOKIE_SECURE"] is False  # `make run` serves plain HTTP


@pytest.mark.parametrize("value", ["X-Forwarded-Proto", "X Forwarded: https", ": https", "X-Forwarded-Proto:"])
def test_a_malformed_proxy_header_fails_at_start_up(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", value)
    with pytest.raises(ImproperlyConfigured, match="X-Forwarded-Proto: https"):
        winnow_settings.env_proxy_header("SECURE_PROXY_SSL_HEADER")


@pytest.mark.django_db
def test_the_session_cookie_a_sign_in_sets_carries_the_flags(alice: Any, settings: Any) -> None:
    settings.SESSION_COOKIE_SECURE = True

    response = Client().post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (True, True, "Lax")
