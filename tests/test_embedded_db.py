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
