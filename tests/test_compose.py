"""docker/compose.yml parses, and its optional MinIO service (profile `s3`) is wired to the app."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "docker" / "compose.yml"
ENV_EXAMPLE = REPO / "docker" / ".env.example"
APP_SERVICES = ("migrate", "web", "worker", "gpu-worker")


def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_minio_is_an_optional_service_whose_bucket_exists_before_the_app_starts() -> None:
    found = services()
    assert found["minio"]["profiles"] == ["s3"] and found["minio-bucket"]["profiles"] == ["s3"]
    assert found["minio-bucket"]["depends_on"]["minio"] == {"condition": "service_healthy"}
    assert "mc mb --ignore-existing" in found["minio-bucket"]["entrypoint"][-1]
    # Without the profile nothing waits for it; with it, migrate (and so every app service) waits for the bucket.
    assert found["migrate"]["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully",
                                                               "required": False}
    for name in APP_SERVICES:
        assert "profiles" not in found[name], name
        assert found[name]["environment"]["WINNOW_MEDIA_CACHE"] == "/var/lib/winnow/cache", name
        assert "cache:/var/lib/winnow/cache" in found[name]["volumes"], name
    assert found["worker"]["command"][found["worker"]["command"].index("-Q") + 1] == "default"


def test_the_env_example_names_the_variables_that_point_the_app_at_minio() -> None:
    text = ENV_EXAMPLE.read_text()
    block = {line.lstrip("# ").split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
             if line.lstrip("# ").startswith(("WINNOW_STORAGE=", "AWS_"))}
    assert block["WINNOW_STORAGE"] == "s3" and block["AWS_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert {"AWS_STORAGE_BUCKET_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(block)
    minio = services()["minio"]["environment"]
    assert minio == {"MINIO_ROOT_USER": "${AWS_ACCESS_KEY_ID:-}", "MINIO_ROOT_PASSWORD": "${AWS_SECRET_ACCESS_KEY:-}"}


def test_docker_compose_accepts_the_file_with_and_without_the_s3_profile(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose is not installed; the YAML checks above still ran")
    shutil.copy(COMPOSE, tmp_path / "compose.yml")
    env = ENV_EXAMPLE.read_text().replace("# WINNOW_STORAGE", "WINNOW_STORAGE").replace("# AWS_", "AWS_")
    (tmp_path / ".env").write_text(env)
    for profile in ([], ["--profile", "s3"]):
        out = subprocess.run(
            [docker, "compose", "-f", str(tmp_path / "compose.yml"), "--env-file", str(tmp_path / ".env"), *profile,
             "config", "--format", "json"], capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        config = json.loads(out.stdout)
        assert ("minio" in config["services"]) == bool(profile)
        assert config["services"]["web"]["environment"]["WINNOW_STORAGE"] == "s3"  # from .env
