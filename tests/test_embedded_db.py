"""The embedded PostgreSQL of `make run`, and settings that accept PostgreSQL only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from winnow import embedded_db

REPO = Path(__file__).resolve().parent.parent


def test_it_starts_a_server_with_pgvector_names_its_url_and_stops(tmp_path):
    data = tmp_path / "postgres"
    assert embedded_db.running_url(data) is None
    url = embedded_db.start(data)
    try:
        assert url == embedded_db.running_url(data)
        assert url.startswith("postgres://postgres@/winnow?host=")
        import dj_database_url

        db = dj_database_url.parse(url)
        with psycopg2.connect(dbname=db["NAME"], user=db["USER"], **db["OPTIONS"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int, "
                        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
            version, has_vector = cur.fetchone()
        assert version >= 180000 and has_vector
        assert embedded_db.start(data) == url  # starting again reuses the running server and its database
    finally:
        assert embedded_db.stop(data) is True
    assert embedded_db.running_url(data) is None
    assert embedded_db.stop(data) is False


def _settings_error(**env: str) -> str:
    # Without DJANGO_SETTINGS_MODULE too: the test settings would set DATABASE_URL when Celery loads them.
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        [sys.executable, "-c", "import winnow.settings"], cwd=REPO, capture_output=True, text=True,
        env={**clean, "WINNOW_VAR_DIR": env.pop("WINNOW_VAR_DIR"), **env}, timeout=60,
    )
    assert result.returncode != 0
    return result.stderr


def test_settings_refuse_a_database_that_is_not_postgresql(tmp_path):
    error = _settings_error(WINNOW_VAR_DIR=str(tmp_path), DATABASE_URL="sqlite:///var/winnow.sqlite3")
    assert "DATABASE_URL must name a PostgreSQL database" in error


def test_settings_say_how_to_start_a_database_when_there_is_none(tmp_path):
    error = _settings_error(WINNOW_VAR_DIR=str(tmp_path))
    assert "DATABASE_URL is not set and the embedded PostgreSQL is not running" in error
    assert "winnow/embedded_db.py start" in error


@pytest.mark.parametrize("status", ["starting", "stopping"])
def test_a_server_that_is_not_ready_has_no_url(tmp_path, status):
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n0\n5432\n{tmp_path}\n\n0 0\n{status}\n")
    assert embedded_db.running_url(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n0\n5432\n{tmp_path}\n\n0 0\nready\n")
    assert embedded_db.running_url(tmp_path) == f"postgres://postgres@/winnow?host={tmp_path}&port=5432"


def test_worker_subprocesses_reach_the_test_database_over_a_socket_folder_or_tcp() -> None:
    """The live Celery worker gets the test database as a URL; the embedded server's host is its socket
    folder, which must survive the round trip (a `user@/folder:port/name` URL would not)."""
    import dj_database_url

    from tests.conftest import database_url

    def where(settings_dict: dict) -> tuple:
        options = settings_dict.get("OPTIONS") or {}
        return (settings_dict["USER"], settings_dict["PASSWORD"] or "", settings_dict["NAME"],
                settings_dict["HOST"] or options.get("host"), str(settings_dict["PORT"] or options.get("port")))

    for url in ("postgres://postgres@/test_winnow?host=/srv/app/var/postgres&port=5432",  # the embedded server's
                "postgres://postgres:p%40ss%3Aw%2Frd@127.0.0.1:5432/test_winnow"):
        settings_dict = dj_database_url.parse(url)
        assert where(dj_database_url.parse(database_url(settings_dict))) == where(settings_dict)
    assert where(settings_dict)[1:] == ("p@ss:w/rd", "test_winnow", "127.0.0.1", "5432")
