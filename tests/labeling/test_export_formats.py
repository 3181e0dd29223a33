"""Export formats beside JSON and NDJSON: CSV, Label Studio, ImageFolder and CycleGAN zips, background exports."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from labeling import exports, formats, ingest, projects, splits
from labeling.models import Asset, Batch, BatchStatus, DecidedBy, Export, ExportStatus, Project, Split, Task, TaskStatus
from tests.conftest import png_bytes, wait_for
from tests.labeling.test_webhooks import answer_all


@pytest.fixture
def labeled(project: Project, make_batch: Callable[..., Batch], bob: Any, alice: Any) -> Project:
    """Two answered tasks (one named like a spreadsheet formula) and one still queued."""
    batch = projects.create_batch(project=project, name="first", kind="calibration", created_by=alice)
    ingest.ingest_files(batch=batch, files=[("=HYPERLINK(evil).png", io.BytesIO(png_bytes(1))),
                                              ("plain.png", io.BytesIO(png_bytes(2)))])
    projects.finalize_batch(batch=batch)
    answer_all(project, bob, label="Anime")
    make_batch(project, n=1, name="second", seed=50)
    return project


def export(client: Any, project: Project, fmt: str) -> Any:
    return client.get(f"/api/v1/projects/{project.pk}/export/", {"format": fmt})


def stored_file(row: Export) -> Path:
    """The export's file in the media folder (these tests run on the default, filesystem storage)."""
    return Path(settings.MEDIA_ROOT) / row.file


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_csv_has_a_row_per_task_and_defuses_formulas(labeled: Project, alice: Any, client_for: Any) -> None:
    response = export(client_for(alice), labeled, "csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="project-{labeled.pk}.csv"'
    text = body_of(response).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert list(rows[0]) == formats.CSV_COLUMNS
    assert [r["id"] for r in rows] == [str(pk) for pk in Task.objects.order_by("id").values_list("id", flat=True)]
    assert [r["answer"] for r in rows] == ["Anime", "Anime", ""]
    assert [r["status"] for r in rows] == ["completed", "completed", "queued"]
    assert rows[0]["annotators"] == "bob=Anime"
    assert rows[0]["source_name"] == "'=HYPERLINK(evil).png"  # a spreadsheet shows it, never runs it
    assert rows[1]["source_name"] == "plain.png"
    assert rows[0]["sha256"] == Task.objects.order_by("id").first().asset.sha256


@pytest.mark.django_db
def test_label_studio_json_carries_answers_as_annotations_and_the_answer_as_a_prediction(
    labeled: Project, alice: Any, bob: Any, client_for: Any
) -> None:
    response = export(client_for(alice), labeled, "labelstudio")

    assert response.status_code == 200
    tasks = json.loads(body_of(response))
    assert len(tasks) == 3
    first = tasks[0]
    assert first["data"]["image"].startswith("http://testserver/signed-media/")
    assert first["data"]["winnow_task_id"] == first["id"]
    [annotation] = first["annotations"]
    assert "completed_by" not in annotation  # Label Studio would read a Winnow id as one of its own users
    assert first["meta"]["winnow"]["annotators"] == [bob.username]
    assert annotation["result"] == [{"type": "choices", "from_name": "choice", "to_name": "image", "origin": "manual",
                                     "value": {"choices": ["Anime"]}}]
    assert annotation["lead_time"] == 0.5
    [prediction] = first["predictions"]
    assert (prediction["model_version"], prediction["score"]) == ("winnow-single", 1.0)
    assert tasks[2]["annotations"] == [] and tasks[2]["predictions"] == []


@pytest.mark.django_db
def test_gold_answers_are_label_studio_ground_truth(labeled: Project, alice: Any, client_for: Any) -> None:
    from labeling import quality

    task = Task.objects.order_by("id").first()
    quality.set_gold(task=task, choice_id=labeled.choices.get(label="Neither").pk)

    tasks = json.loads(body_of(export(client_for(alice), labeled, "labelstudio")))

    truth = [a for a in tasks[0]["annotations"] if a["ground_truth"]]
    assert [a["result"][0]["value"]["choices"] for a in truth] == [["Neither"]]


@pytest.mark.django_db
def test_imagefolder_zip_holds_answered_images_by_choice(labeled: Project, alice: Any, client_for: Any) -> None:
    response = export(client_for(alice), labeled, "imagefolder")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body_of(response)))
    answered = Task.objects.filter(status=TaskStatus.COMPLETED).select_related("asset").order_by("id")
    expected = {f"Anime/{t.asset.sha256}.png" for t in answered}
    assert set(archive.namelist()) == expected | {"labels.csv", "metadata.csv"}
    for task in answered:
        with default_storage.open(task.asset.file.name, "rb") as stored:
            assert archive.read(f"Anime/{task.asset.sha256}.png") == stored.read()
    labels = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert {(r["path"], r["label"], r["task_id"]) for r in labels} == {
        (f"Anime/{t.asset.sha256}.png", "Anime", str(t.pk)) for t in answered}


def test_folder_names_are_safe_path_components() -> None:
    assert formats.folder_name("cats/dogs") == "cats_dogs"
    assert formats.folder_name("../../etc") == "_.._etc"
    assert formats.folder_name("...") == "_"
    assert formats.folder_name("Photo réaliste") == "Photo réaliste"


@pytest.mark.django_db
def test_unknown_formats_and_non_owners_are_refused(labeled: Project, bob: Any, mallory: Any, alice: Any,
                                                    client_for: Any) -> None:
    unknown = export(client_for(alice), labeled, "xlsx")
    assert unknown.status_code == 400
    assert "labelstudio" in json.dumps(unknown.json())
    assert export(client_for(bob), labeled, "csv").status_code == 403
    assert export(client_for(mallory), labeled, "csv").status_code == 404


# --- an approved split in the CycleGAN layout ----------------------------------------------------


def approved_split(project: Project, alice: Any, *, approve: bool = True) -> Split:
    """Eight images answered A or B in an accepted batch, split half train and half test by hash."""
    batch = projects.create_batch(project=project, name="accepted", kind="calibration", created_by=alice)
    ingest.ingest_files(batch=batch, files=[(f"{i}.png", io.BytesIO(png_bytes(100 + i))) for i in range(8)])
    for i, task in enumerate(Task.objects.filter(batch=batch).order_by("id")):
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.COMPLETED, decided_by=DecidedBy.SINGLE,
                                               final_choice=project.choices.get(domain="AB"[i % 2]), agreement=1.0)
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.ACCEPTED)
    split = splits.build_split(project=project, created_by=alice, val_fraction=0, test_fraction=0.5)
    return splits.approve_split(split=split, approved_by=alice) if approve else split


@pytest.mark.django_db
def test_an_approved_split_exports_as_train_and_test_folders(project: Project, alice: Any, client_for: Any) -> None:
    split = approved_split(project, alice)

    response = client_for(alice).get(f"/api/v1/splits/{split.pk}/export-cyclegan/")

    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(body_of(response)))
    names = archive.namelist()
    assert names[0] == "manifest.json"
    assert json.loads(archive.read("manifest.json"))["counts"] == split.counts
    folders = {name.split("/")[0] for name in names[1:]}
    assert folders <= {"trainA", "trainB", "testA", "testB"}
    for domain in "AB":
        for partition in ("train", "test"):
            in_zip = [n for n in names if n.startswith(f"{partition}{domain}/")]
            assert len(in_zip) == split.counts[domain][partition]
    sha = names[1].split("/")[1].split(".")[0]
    with default_storage.open(Asset.objects.get(sha256=sha).file.name, "rb") as stored:
        assert archive.read(names[1]) == stored.read()


@pytest.mark.django_db
def test_a_draft_split_is_not_exported_for_training(project: Project, alice: Any, bob: Any, client_for: Any) -> None:
    split = approved_split(project, alice, approve=False)

    response = client_for(alice).get(f"/api/v1/splits/{split.pk}/export-cyclegan/")

    assert response.status_code == 409
    assert "approve it" in response.json()["detail"]
    assert client_for(bob).get(f"/api/v1/splits/{split.pk}/export-cyclegan/").status_code == 403


# --- background exports ------------------------------------------------------------------------


@pytest.mark.worker
def test_a_background_export_reports_progress_and_serves_its_file(
    celery_worker: Any, labeled: Project, alice: Any, client_for: Any
) -> None:
    api = client_for(alice)

    queued = api.post(f"/api/v1/projects/{labeled.pk}/exports/", {"format": "csv"}, format="json")

    assert queued.status_code == 202
    assert (queued.json()["status"], queued.json()["download_url"]) == ("queued", None)
    url = f"/api/v1/projects/{labeled.pk}/exports/{queued.json()['id']}/"
    done = wait_for(lambda: (r := api.get(url).json())["status"] == "done" and r, what="the export job")
    assert (done["progress"], done["rows_done"], done["rows_total"]) == (1.0, 3, 3)
    assert done["download_url"] == f"http://testserver{url}download/"
    download = api.get(f"{url}download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="project-{labeled.pk}-export-{done["id"]}.csv"'
    text = b"".join(download.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert [r["answer"] for r in rows] == ["Anime", "Anime", ""]
    assert [e["id"] for e in api.get(f"/api/v1/projects/{labeled.pk}/exports/").json()] == [done["id"]]


@pytest.mark.django_db
def test_the_export_job_writes_once_and_records_failures(labeled: Project, alice: Any, settings: Any) -> None:
    export_row = Export.objects.create(project=labeled, format="ndjson", requested_by=alice)

    exports.run_export(export_id=export_row.pk)
    exports.run_export(export_id=export_row.pk)  # a redelivered job finds it done and does nothing

    export_row.refresh_from_db()
    assert (export_row.status, export_row.rows_done, export_row.rows_total) == (ExportStatus.DONE, 3, 3)
    path = stored_file(export_row)
    assert path.name.startswith(f"export-{export_row.pk}-") and path.suffix == ".ndjson"
    assert export_row.byte_size == path.stat().st_size
    assert len(path.read_text().splitlines()) == 3
    # A split deleted while its export waited in the queue: the export fails with the reason.
    lost = Export.objects.create(project=labeled, format="cyclegan", split=None, requested_by=alice)
    with pytest.raises(Exception, match="split"):
        exports.run_export(export_id=lost.pk)
    lost.refresh_from_db()
    assert lost.status == ExportStatus.FAILED
    assert "split" in lost.error
    assert not list(path.parent.glob(".tmp-*"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"format": "xls"}, 400, "not a valid choice"),
        ({"format": "cyclegan"}, 400, "give the id of an approved split"),
        ({"format": "csv", "batch": 999999}, 404, ""),
    ],
)
def test_bad_export_requests_are_refused(labeled: Project, alice: Any, client_for: Any, body: dict[str, Any], code: int,
                                         message: str) -> None:
    response = client_for(alice).post(f"/api/v1/projects/{labeled.pk}/exports/", body, format="json")

    assert response.status_code == code
    assert message in json.dumps(response.json())
    assert Export.objects.count() == 0


@pytest.mark.django_db
def test_exports_are_for_owners_and_downloads_wait_until_done(labeled: Project, alice: Any, bob: Any, mallory: Any,
                                                              client_for: Any) -> None:
    row = Export.objects.create(project=labeled, format="csv", requested_by=alice)
    base = f"/api/v1/projects/{labeled.pk}/exports/"

    assert client_for(alice).get(f"{base}{row.pk}/download/").status_code == 409
    for persona, refused in ((bob, 403), (mallory, 404)):  # a member is told who may; a stranger learns nothing
        assert client_for(persona).post(base, {"format": "csv"}, format="json").status_code == refused
        assert client_for(persona).get(f"{base}{row.pk}/").status_code == refused
    draft = approved_split(labeled, alice, approve=False)
    refused = client_for(alice).post(base, {"format": "cyclegan", "split": draft.pk}, format="json")
    assert refused.status_code == 409
    assert Export.objects.count() == 1


@pytest.mark.django_db
def test_old_export_files_expire_and_their_download_says_so(labeled: Project, alice: Any, client_for: Any,
                                                            settings: Any) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    from labeling import jobs

    settings.EXPORT_RETENTION_HOURS = 24
    old, recent = (Export.objects.create(project=labeled, format="ndjson", requested_by=alice) for _ in range(2))
    for row in (old, recent):
        exports.run_export(export_id=row.pk)
    Export.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(hours=25))
    old.refresh_from_db()
    old_path, recent_path = stored_file(old), stored_file(Export.objects.get(pk=recent.pk))
    stale_tmp = old_path.parent / ".tmp-killed-worker"
    stale_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (0, 0))
    fresh_tmp = old_path.parent / ".tmp-being-written"
    fresh_tmp.write_bytes(b"half")

    settings.EXPORT_RETENTION_HOURS = 0  # 0 keeps everything
    assert exports.prune_exports() == 0 and old_path.exists()
    kept = io.StringIO()
    call_command("prune_exports", stdout=kept)
    assert kept.getvalue().strip() == "EXPORT_RETENTION_HOURS is 0: export files are kept" and old_path.exists()
    settings.EXPORT_RETENTION_HOURS = 24
    # The export job prunes after writing: no scheduler is needed.
    jobs.run_export(Export.objects.create(project=labeled, format="csv", requested_by=alice).pk)
    assert not old_path.exists() and recent_path.exists()
    assert not stale_tmp.exists() and fresh_tmp.exists()
    assert Export.objects.get(pk=old.pk).status == ExportStatus.EXPIRED
    api = client_for(alice)
    gone = api.get(f"/api/v1/projects/{labeled.pk}/exports/{old.pk}/download/")
    assert gone.status_code == 409 and gone.json()["code"] == "expired" and "start a new export" in gone.json()["detail"]
    listed = api.get(f"/api/v1/projects/{labeled.pk}/exports/{old.pk}/").json()
    assert listed["status"] == "expired" and listed["download_url"] is None
    assert api.get(f"/api/v1/projects/{labeled.pk}/exports/{recent.pk}/download/").status_code == 200

    out = io.StringIO()
    call_command("prune_exports", stdout=out)  # nothing more is old enough
    assert out.getvalue().strip() == "0 export(s) older than 24 h expired"
    fresh_tmp.unlink()  # the media folder is shared by the whole test session


def _as_if_its_worker_was_killed(export_row: Export, beat_age: timedelta) -> Path:
    """The state a worker killed mid-export leaves: running, a beat of that age, half a file."""
    from django.utils import timezone

    Export.objects.filter(pk=export_row.pk).update(
        status=ExportStatus.RUNNING, rows_done=1000, heartbeat_at=timezone.now() - beat_age,
        started_at=timezone.now() - beat_age,
    )
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(export_row.project_id)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".tmp-{export_row.pk}-dead"
    partial.write_bytes(b"half a fi")
    return partial


@pytest.mark.django_db
def test_a_redelivered_export_job_takes_over_only_from_a_dead_worker(labeled: Project, alice: Any) -> None:
    alive = Export.objects.create(project=labeled, format="ndjson", requested_by=alice)
    still_writing = _as_if_its_worker_was_killed(alive, timedelta(seconds=5))  # beat 5 s ago: its worker writes on
    exports.run_export(export_id=alive.pk)
    assert Export.objects.get(pk=alive.pk).status == ExportStatus.RUNNING and still_writing.exists()
    still_writing.unlink()  # the media folder is shared by the whole test session

    dead = Export.objects.create(project=labeled, format="ndjson", requested_by=alice)
    partial = _as_if_its_worker_was_killed(dead, timedelta(seconds=settings.EXPORT_STALE_SECONDS + 10))
    exports.run_export(export_id=dead.pk)  # the message a killed worker never acknowledged comes back
    dead.refresh_from_db()
    assert (dead.status, dead.rows_done, dead.rows_total) == (ExportStatus.DONE, 3, 3)
    assert len(stored_file(dead).read_text().splitlines()) == 3
    assert not partial.exists()


@pytest.mark.worker
def test_a_starting_worker_finishes_an_export_whose_worker_died(celery_worker: Any, labeled: Project, alice: Any) -> None:
    dead = Export.objects.create(project=labeled, format="csv", requested_by=alice)
    partial = _as_if_its_worker_was_killed(dead, timedelta(hours=1))
    assert exports.requeue_stalled_exports() == [dead.pk]  # what every worker's sweep runs
    wait_for(lambda: Export.objects.get(pk=dead.pk).status == ExportStatus.DONE, what="the export taken over")
    assert Export.objects.get(pk=dead.pk).rows_done == 3
    wait_for(lambda: not partial.exists(), timeout=5, what="the dead worker's partial file removed")
