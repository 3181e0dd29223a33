"""Model assistance fixtures: a planted pile of three kinds with known truth, labeled calibration gold,
and the embedding and suggestion jobs run in the test's own process (the worker tests run them in one)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from labeling import answers, demo, features, ingest, leasing, projects, quality, suggestions
from labeling.models import Batch, BatchKind, FeatureJob, Project, SuggestionFit

PLANTED_CHOICES = [
    {"label": "Photo", "hotkey": "1", "domain": "A", "description": "a photograph"},
    {"label": "Cartoon", "hotkey": "2", "domain": "B", "description": "a cartoon rendering"},
    {"label": "Neither", "hotkey": "3", "domain": "excluded", "description": "text, charts, noise"},
]
KIND_OF_LABEL = {"Photo": "photo", "Cartoon": "cartoon", "Neither": "neither"}


def planted_files(n: int, seed: int = 0, size: int = 48) -> tuple[list[tuple[str, io.BytesIO]], dict[str, str]]:
    """`n` planted images cycling through the three kinds; (files, {file name: kind})."""
    files, truth = [], {}
    for i in range(n):
        kind = demo.PLANTED_KINDS[i % 3]
        name = f"{kind}-{seed + i}.png"
        files.append((name, io.BytesIO(demo.planted_image(kind, seed + i, size))))
        truth[name] = kind
    return files, truth


@pytest.fixture
def planted(alice: Any, bob: Any, dave: Any, carol: Any) -> Callable[..., dict[str, Any]]:
    """A project on a planted pile: a calibration batch of `gold` images answered by bob and confirmed by alice
    (gold), then an open-for-labeling production batch of `production` images. Returns the pieces."""

    def make(gold: int = 30, production: int = 30, trap_rate: float = 0.0, gold_rate: float = 0.0) -> dict[str, Any]:
        project = projects.create_project(created_by=alice, fields={"name": "Planted", "trap_rate": trap_rate,
                                                                    "gold_rate": gold_rate}, choices=PLANTED_CHOICES)
        for name, role in (("bob", "annotator"), ("dave", "annotator"), ("carol", "reviewer")):
            projects.add_member(project=project, username=name, role=role)
        choice = {c.label: c for c in project.choices.all()}
        by_kind = {KIND_OF_LABEL[label]: c for label, c in choice.items()}
        calibration = projects.create_batch(project=project, name="calibration", kind=BatchKind.CALIBRATION,
                                            created_by=alice)
        files, truth = planted_files(gold, seed=0)
        ingest.ingest_files(batch=calibration, files=files)
        projects.finalize_batch(batch=calibration)
        while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
            kind = truth[project.tasks.get(pk=task.pk).source_name]
            answers.submit_annotation(task=task, annotator=bob, choice_id=by_kind[kind].pk, duration_ms=300)
        for task in calibration.tasks.all():
            quality.set_gold(task=task, choice_id=by_kind[truth[task.source_name]].pk)
        projects.approve_calibration(project=project)
        batch = projects.create_batch(project=project, name="production", kind=BatchKind.PRODUCTION, created_by=alice)
        files, more = planted_files(production, seed=10_000)
        truth.update(more)
        results = ingest.ingest_files(batch=batch, files=files)
        projects.finalize_batch(batch=batch)
        project.refresh_from_db()
        return {"project": project, "calibration": calibration, "batch": Batch.objects.get(pk=batch.pk),
                "truth": truth, "choice": choice, "by_kind": by_kind, "upload": results}

    return make


def assist_now(project: Project) -> tuple[FeatureJob, SuggestionFit]:
    """Run the embedding job and the suggestion refit it asks for, here and now."""
    job = features.schedule(project_id=project.pk, countdown=0)
    assert features.run_feature_job(job_id=job.pk) == project.pk
    suggestions.schedule_refit(project_id=project.pk, countdown=0)  # as the job's worker does next
    fit = SuggestionFit.objects.filter(project=project).order_by("-id").first()
    suggestions.run_refit(fit_id=fit.pk)
    job.refresh_from_db()
    fit.refresh_from_db()
    return job, fit
