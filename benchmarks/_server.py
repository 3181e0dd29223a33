"""Start a throwaway Winnow (gunicorn + PostgreSQL + Redis on loopback) for a benchmark, and watch its memory.

Usage from a benchmark script:

    with BenchServer(db="winnow_bench_ingest") as server:
        token = server.create_user("alice")
        requests.post(server.url + "/api/v1/...", headers={"Authorization": f"Token {token}"})
        print(server.peak_rss_mb())
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import psycopg2
import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class BenchServer:
    def __init__(self, db: str, workers: int = 2, broker: str = "redis://127.0.0.1:6379/15",
                 pg: str = "postgres://postgres@127.0.0.1:5432", pg_query: str = "") -> None:
        """`pg` is the server's URL without a database; `pg_query` what follows the database name (the
        embedded PostgreSQL's socket folder and port: `?host=…&port=…`)."""
        self.db = db
        self.pg_query = pg_query
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.media = tempfile.mkdtemp(prefix="winnow-bench-media-")
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{pg}/{db}{pg_query}",
            "CELERY_BROKER_URL": broker,
            "MEDIA_ROOT": self.media,
            "WINNOW_VAR_DIR": tempfile.mkdtemp(prefix="winnow-bench-var-"),
            "DEBUG": "0",
            "SECRET_KEY": "benchmark-only",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "LOG_LEVEL": "WARNING",
        }
        self.pg = pg
        self.proc: subprocess.Popen[bytes] | None = None
        self._peak_worker_kb = 0
        self._stop = threading.Event()

    def manage(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, check=True, capture_output=True,
                             text=True, input=stdin)
        return out.stdout

    def create_user(self, username: str, password: str = "benchmark-password") -> str:
        line = self.manage("createuser", username, "--password-stdin", stdin=password + "\n")
        return line.strip().rsplit(" ", 1)[-1]

    def _recreate_db(self) -> None:
        conn = psycopg2.connect(f"{self.pg}/postgres{self.pg_query}".replace("postgres://", "postgresql://", 1))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{self.db}"')
        conn.close()

    def __enter__(self) -> BenchServer:
        self._recreate_db()
        self.manage("migrate", "--noinput")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "winnow.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--timeout", "600", "--log-level", "warning"],
            cwd=REPO, env=self.env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            raise RuntimeError("gunicorn did not come up")
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        assert self.proc is not None
        while not self._stop.is_set():
            for pid in children(self.proc.pid):
                self._peak_worker_kb = max(self._peak_worker_kb, rss_kb(pid))
            time.sleep(0.05)

    def reset_peak(self) -> None:
        self._peak_worker_kb = 0

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the busiest gunicorn worker since the last reset."""
        return self._peak_worker_kb / 1024

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
