"""Pages. Templates render the shell; frontend/run.js and frontend/training.js call the same API as clients."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from labeling.models import Project, Role
from labeling.permissions import role_in
from labeling.views import project_page

from .models import Run


@login_required
def project_training(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's splits (build, approve, export) and runs (start one on an approved split)."""
    project = get_object_or_404(Project.objects.alive(), pk=pk)
    # No GPU worker: training goes to the default queue (as `make run` sets it) or is pinned to the CPU.
    cpu_only = settings.WINNOW_TRAINING_QUEUE != "gpu" or settings.WINNOW_TRAINING_DEVICE == "cpu"
    return project_page(request, project, "training/project.html", extra={"cpu_only": cpu_only})


@login_required
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: status, progress and ETA, loss curves, sample grids, checkpoints, cancel/resume, translate."""
    run = get_object_or_404(Run.objects.select_related("project", "split"), pk=pk, project__deleted_at__isnull=True)
    return project_page(request, run.project, "training/run.html", extra={"run": run})


def may_read_run_file(user: Any, parts: list[str]) -> bool:
    """Run files (runs/<run>-<storage key>/): sample grids to the run project's members, the rest
    (checkpoints, generator exports, augmentations) to its owners, as the API's downloads allow.
    A rule of winnow.media, registered in apps.py."""
    run_id, _, storage_key = parts[1].partition("-")
    if not (run_id.isascii() and run_id.isdigit()):
        return False
    run = Run.objects.filter(pk=int(run_id), storage_key=storage_key, project__deleted_at__isnull=True).select_related(
        "project").first()
    role = None if run is None else role_in(user, run.project)
    return role is not None and (parts[2] == "samples" or role == Role.OWNER)
