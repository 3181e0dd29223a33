"""Shared fixtures: personas, API clients, projects, a live Celery worker and a Chromium browser.

Personas: alice owns the project, bob and dave annotate, carol reviews, mallory has no access.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import demo, ingest, projects
from labeling.models import Batch, BatchKind, Project

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct-horse-battery"

CHOICES = [
    {"label": "Photorealistic", "description": "A photo", "long_hint": "Natural light, lens blur, sensor noise.",
     "hotkey": "1", "domain": "A"},
    {"label": "Anime", "description": "Anime art", "long_hint": "Cel shading, clean outlines, big eyes.",
     "hotkey": "2", "domain": "B"},
    {"label": "Neither", "description": "Anything else", "long_hint": "Cartoons, text, collages, unsure.",
     "hotkey": "3", "domain": "excluded"},
]


# --- the cache ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts without this suite's cache keys (sign-in attempt counts, cached progress).

    Only keys under this suite's prefix are deleted: other suites may share the Redis database.
    """
    from django.core.cache import cache
    from django.core.cache.backends.redis import RedisCache

    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


# --- images -----------------------------------------------------------------------------------


def png_bytes(seed: int, size: int = 48) -> bytes:
    return demo.demo_image(seed, size)


def jpeg_bytes(seed: int, size: int = 64) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes(seed, size))).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    return png_bytes


# --- personas and clients ---------------------------------------------------------------------


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[[str], Any]:
    def make(username: str) -> Any:
        user = django_user_model.objects.filter(username=username).first()
        if user is None:
            user = django_user_model.objects.create_user(username=username, password=PASSWORD)
        return user

    return make


@pytest.fixture
def alice(make_user: Callable[[str], Any]) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[[str], Any]) -> Any:
    return make_user("bob")


@pytest.fixture
def dave(make_user: Callable[[str], Any]) -> Any:
    return make_user("dave")


@pytest.fixture
def carol(make_user: Callable[[str], Any]) -> Any:
    return make_user("carol")


@pytest.fixture
def mallory(make_user: Callable[[str], Any]) -> Any:
    return make_user("mallory")


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """An API client authenticated with the user's token, as scripts use the API."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def project(alice: Any, bob: Any, dave: Any, carol: Any) -> Project:
    """Alice's project: bob and dave annotate, carol reviews. Overlap 1."""
    project = projects.create_project(
        created_by=alice,
        fields={"name": "Anime vs photo", "instructions": "Photo or anime?", "question": "Photo or anime?"},
        choices=CHOICES,
    )
    projects.add_member(project=project, username="bob", role="annotator")
    projects.add_member(project=project, username="dave", role="annotator")
    projects.add_member(project=project, username="carol", role="reviewer")
    return project


@pytest.fixture
def make_batch(alice: Any) -> Callable[..., Batch]:
    """A batch of `n` generated images; finalized unless told otherwise."""

    def make(project: Project, n: int = 5, *, kind: str = BatchKind.CALIBRATION, name: str | None = None,
             finalize: bool = True, seed: int = 0) -> Batch:
        if kind == BatchKind.PRODUCTION and not project.calibration_approved:
            project.calibration_approved_at = project.created_at
            project.save(update_fields=["calibration_approved_at"])
        batch = projects.create_batch(
            project=project, name=name or f"batch-{Batch.objects.count() + 1}", kind=kind, created_by=alice
        )
        files = [(f"img-{seed + i}.png", io.BytesIO(png_bytes(seed + i))) for i in range(n)]
        results = ingest.ingest_files(batch=batch, files=files)
        assert all(r["status"] == "created" for r in results), results
        if finalize:
            projects.finalize_batch(batch=batch)
        batch.refresh_from_db()
        return batch

    return make


# --- a live Celery worker ---------------------------------------------------------------------


class WorkerProcess:
    """A real `celery worker` subprocess on the test database and broker."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "default,gpu") -> None:
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "winnow", "worker", "-P", "solo", "-c", "1", "-Q", self.queues,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info", "-n", f"test-{os.getpid()}-{time.time_ns()}@%h"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log_path.read_text()[-3000:]}")
            text = self.log_path.read_bytes()[max(0, start - 1):].decode(errors="replace")
            if " ready." in text:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready in {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as an out-of-memory killer or a pulled plug would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def database_url(db: dict[str, Any]) -> str:
    """A URL for Django's connection settings `db`. The embedded server's host is its socket folder, which
    dj-database-url reads from the query into OPTIONS (`?host=/folder&port=5432`); it goes back there."""
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    options = db.get("OPTIONS") or {}
    host, port = db.get("HOST") or options.get("host") or "", db.get("PORT") or options.get("port") or ""
    if host.startswith("/"):
        query = urlencode({"host": host, **({"port": port} if port else {})})
        return f"postgres://{user}{password}@/{db['NAME']}?{query}"
    return f"postgres://{user}{password}@{host}{':' + str(port) if port else ''}/{db['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup: Any, django_db_blocker: Any) -> dict[str, str]:
    """Environment for worker subprocesses: the test database, the test broker, the test media folder."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(db),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        INGEST_ALLOWED_HOSTS="localhost",
        INGEST_URL_TIMEOUT="2",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def start_worker(worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProcess]]:
    """Start extra workers (e.g. to kill one mid-run); all are stopped at the end of the session."""
    from winnow.celery import app

    app.control.purge()
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("workers")

    def start(queues: str = "default,gpu", **extra_env: str) -> WorkerProcess:
        env = {**worker_env, **extra_env}
        worker = WorkerProcess(env, logs / f"worker-{len(started)}.log", queues).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def _session_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker()


@pytest.fixture
def celery_worker(_session_worker: WorkerProcess, transactional_db: Any) -> WorkerProcess:
    """A live worker consuming `default` and `gpu`. Tests using it see committed data only."""
    if _session_worker.proc is None or _session_worker.proc.poll() is not None:
        _session_worker.start()
    return _session_worker


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- S3-compatible object storage ----------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Media:
    """A bucket of its own on the loopback S3 server, and the environment that points Winnow at it."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        import boto3

        self.endpoint, self.bucket = endpoint, bucket
        self.env = {
            "WINNOW_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": bucket, "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "winnow-test", "AWS_SECRET_ACCESS_KEY": "winnow-test-secret",
            "AWS_S3_REGION_NAME": "us-east-1", "AWS_S3_MAX_ATTEMPTS": "1", "AWS_S3_CONNECT_TIMEOUT": "2",
        }
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id="winnow-test", aws_secret_access_key="winnow-test-secret")

    def storage_settings(self, **env: str) -> dict[str, Any]:
        """STORAGES["default"] as winnow/settings.py builds it from this environment (and `env` on top)."""
        from winnow.settings import media_storage

        saved = dict(os.environ)
        os.environ.update({**self.env, **env})
        try:
            return media_storage("s3")
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_media(s3_server: str, settings: Any, tmp_path: Path) -> S3Media:
    """The media storage of this process is a fresh bucket on the loopback S3 server. MEDIA_ROOT and the
    local cache move to empty folders of this test, so a test can show nothing was written to disk."""
    import uuid

    media = S3Media(s3_server, f"winnow-test-{uuid.uuid4().hex[:16]}")
    media.client.create_bucket(Bucket=media.bucket)
    settings.STORAGES = {**settings.STORAGES, "default": media.storage_settings()}
    settings.MEDIA_ROOT = tmp_path / "media-root"
    settings.WINNOW_MEDIA_CACHE = tmp_path / "media-cache"
    return media


def files_under(folder: Path) -> list[str]:
    """Every file under `folder` (relative, sorted); none when it does not exist."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- Chromium through Playwright --------------------------------------------------------------

CHROMIUM = os.environ.get("WINNOW_CHROMIUM", "/usr/bin/chromium")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}; `make test` installs it (apt-get install chromium)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + sync Playwright in one process
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


CSP_MARKERS = ("Content Security Policy", "Content-Security-Policy", "Refused to")


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Opens pages at 1280×720, each in a context of its own (one signed-in user each). Every page's console
    is watched: a Content-Security-Policy violation or an uncaught script error fails the test. A failing
    test leaves a screenshot of each page in test-artifacts/."""
    contexts: list[Any] = []
    pages: list[Any] = []
    problems: list[str] = []

    def open_one() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if any(marker in m.text for marker in CSP_MARKERS) else None)
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        contexts.append(context)
        pages.append(page)
        return page

    yield open_one
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, page in enumerate(pages):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}{'-' + str(i) if i else ''}.png"), full_page=True)
    for context in contexts:
        context.close()
    if failed is not None and failed.passed:
        assert not problems, "the pages reported problems in the console:\n" + "\n".join(problems)


@pytest.fixture
def page(open_page: Callable[[], Any]) -> Any:
    """A fresh page at 1280×720 whose console is watched (see `open_page`)."""
    return open_page()


@pytest.fixture
def login(live_server: Any) -> Callable[[Any, str], None]:
    """Sign a persona in through the login form."""

    def do(page: Any, username: str) -> None:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/**")

    return do
