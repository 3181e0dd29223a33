"""Fixtures for splits and training: accepted batches with final answers, approved splits, tiny configs."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labeling import ingest, projects, splits
from labeling.models import Batch, BatchStatus, Choice, DecidedBy, Project, Split, Task, TaskStatus
from training import runs
from training.models import Run, RunStatus

# Worker timings for tests, set before any worker subprocess copies the environment: a heartbeat
# every half second and recovery after 5 s of silence (production: 5 s and 60 s). No loader
# processes: the tiny images decode faster than processes start.
os.environ.setdefault("WINNOW_JOB_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("WINNOW_RUN_STALE_SECONDS", "5")
os.environ.setdefault("WINNOW_TRAINING_DATA_WORKERS", "0")

# A config small enough for a CPU test: 32x32, 8 filters, one residual block, a few iterations.
TINY_CONFIG = {
    "image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "n_layers_d": 2, "batch_size": 1,
    "epochs": 1, "decay_epochs": 1, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "pool_size": 4,
}


def noise_png(seed: int, size: int = 40) -> bytes:
    """A distinct, textured image (random noise with a colour cast), so every upload is a new asset."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    array[..., seed % 3] //= 2
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def choice(project: Project, domain: str) -> Choice:
    return project.choices.get(domain=domain)


@pytest.fixture
def accepted_batch(alice: Any) -> Callable[..., Batch]:
    """A batch whose tasks are answered as `labels` (domains, e.g. "AAB-"; "-" = excluded), then accepted.

    The audit workflow belongs to the quality pages; here the final answers and the acceptance are
    set directly, as the audit leaves them.
    """
    counter = {"seed": 1000}

    def make(project: Project, labels: str, *, status: str = BatchStatus.ACCEPTED,
             agreements: Sequence[float | None] | None = None, name: str | None = None) -> Batch:
        batch = projects.create_batch(project=project, name=name or f"accepted-{Batch.objects.count() + 1}",
                                      kind="calibration", created_by=alice)
        files = []
        for _ in labels:
            counter["seed"] += 1
            files.append((f"img-{counter['seed']}.png", io.BytesIO(noise_png(counter["seed"]))))
        results = ingest.ingest_files(batch=batch, files=files)
        assert all(r["status"] == "created" for r in results), results
        domains = {"A": "A", "B": "B", "-": "excluded"}
        tasks = list(Task.objects.filter(batch=batch).order_by("id"))
        for i, (task, label) in enumerate(zip(tasks, labels, strict=True)):
            agreement = agreements[i] if agreements is not None else 1.0
            Task.objects.filter(pk=task.pk).update(
                status=TaskStatus.COMPLETED, final_choice=choice(project, domains[label]),
                decided_by=DecidedBy.SINGLE, agreement=agreement, annotation_count=1,
            )
        Batch.objects.filter(pk=batch.pk).update(status=status)
        batch.refresh_from_db()
        return batch

    return make


@pytest.fixture
def approved_split(project: Project, accepted_batch: Callable[..., Batch], alice: Any) -> Split:
    """Alice's approved split: 4 images of A, 3 of B (every partition counted; training reads train)."""
    accepted_batch(project, "AAAABBBBB-")
    split = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0)
    return splits.approve_split(split=split, approved_by=alice)


@pytest.fixture
def trained_run(transactional_db: Any, approved_split: Split, alice: Any) -> Run:
    """A run of TINY_CONFIG trained to the end (10 steps) in this process, by the service the worker calls.

    Created directly rather than through start_run, so no message reaches a worker.
    """
    run = Run.objects.create(project=approved_split.project, split=approved_split, requested_by=alice,
                             config=runs.resolve_config(TINY_CONFIG))
    runs.execute_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run
