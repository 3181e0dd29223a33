"""Streaming JSON and NDJSON export of a project's tasks."""

import csv
import io
import json

import pytest

from labeling import answers, leasing, projects

pytestmark = pytest.mark.django_db


def body(response):
    return b"".join(response.streaming_content).decode()


def test_json_and_ndjson_carry_every_task_with_its_answers(project, alice, bob, client_for, make_batch):
    make_batch(project, 3)
    anime = project.choices.get(label="Anime")
    task = leasing.lease_next_task(project=project, annotator=bob)
    answers.submit_annotation(task=task, annotator=bob, choice_id=anime.pk, duration_ms=1200)
    client = client_for(alice)
    response = client.get(f"/api/v1/projects/{project.pk}/export/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    rows = json.loads(body(response))
    assert len(rows) == 3
    answered = next(r for r in rows if r["id"] == task.pk)
    assert answered["answer"] == "Anime" and answered["status"] == "completed"
    assert answered["decided_by"] == "single" and answered["agreement"] == 1.0
    assert answered["annotations"] == [
        {"annotator_id": bob.pk, "annotator": "bob", "choice": "Anime", "duration_ms": 1200,
         "created_at": answered["annotations"][0]["created_at"], "assisted": False}
    ]
    assert answered["image"]["sha256"] == task.asset.sha256
    assert answered["image"]["url"].startswith("http://testserver/media/assets/")
    lines = body(client.get(f"/api/v1/projects/{project.pk}/export/?format=ndjson")).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in rows]


def test_metadata_comes_back_exactly_in_every_format(project, alice, client_for, make_batch):
    """JSON formats splice the stored JSON text in; CSV and Label Studio decode it."""
    batch = make_batch(project, 0, finalize=False)
    metadata = {"camera": {"make": "Ñikon", "iso": 400}, "tags": ["a\tb", "c\\d", 'say "hi"'], "ok": True, "none": None}
    client = client_for(alice)
    client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": [{"image_url": "https://e.org/1.png", "metadata": metadata},
                                                               {"image_url": "https://e.org/2.png"}]}, format="json")
    rows = json.loads(body(client.get(f"/api/v1/projects/{project.pk}/export/?format=json")))
    assert [r["metadata"] for r in rows] == [metadata, {}]
    assert rows[0]["image"]["source_url"] == "https://e.org/1.png"
    lines = body(client.get(f"/api/v1/projects/{project.pk}/export/?format=ndjson")).splitlines()
    assert [json.loads(line)["metadata"] for line in lines] == [metadata, {}]
    studio = json.loads(body(client.get(f"/api/v1/projects/{project.pk}/export/?format=labelstudio")))
    assert studio[0]["data"]["camera"] == metadata["camera"]
    csv_text = body(client.get(f"/api/v1/projects/{project.pk}/export/?format=csv"))
    records = list(csv.DictReader(io.StringIO(csv_text)))
    assert json.loads(records[0]["metadata"]) == metadata and records[1]["metadata"] == ""


def test_chunks_by_id_range_or_id_list_carry_only_their_own_tasks_answers(project, alice, bob, client_for, make_batch,
                                                                           monkeypatch):
    """With another project's answered tasks between and around ours, dense chunks (read by id range)
    and sparse ones (read by id list) both give each task exactly its own answers."""
    from labeling import formats

    other = projects.create_project(created_by=alice, fields={"name": "other"},
                                    choices=[{"label": "Q-yes", "hotkey": "1", "domain": "A"},
                                             {"label": "Q-no", "hotkey": "2", "domain": "B"}])
    projects.add_member(project=other, username="bob", role="annotator")
    for target, n, seed in ((project, 1, 0), (other, 1, 10), (project, 1, 1), (project, 1, 2), (other, 10, 20),
                            (project, 1, 3)):
        make_batch(target, n, seed=seed)
    for target in (project, other):
        label = target.choices.order_by("id").first()
        while (task := leasing.lease_next_task(project=target, annotator=bob)) is not None:
            answers.submit_annotation(task=task, annotator=bob, choice_id=label.pk, duration_ms=100)
    monkeypatch.setattr(formats, "CHUNK", 2)
    rows = json.loads(body(client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=json")))
    ids = [r["id"] for r in rows]
    # Chunk 1 (ids a, a+2) is read by range, which takes in the other project's a+1; chunk 2 (a+3, a+14) by list.
    assert len(ids) == 4 and ids[1] - ids[0] == 2 and ids[3] - ids[2] >= 4 * 2
    mine = project.choices.order_by("id").first().label
    assert [[a["choice"] for a in r["annotations"]] for r in rows] == [[mine]] * 4


def test_an_empty_project_exports_an_empty_list(project, alice, client_for):
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=json")
    assert json.loads(body(response)) == []


def test_an_unknown_format_is_400(project, alice, client_for):
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/export/?format=xml")
    assert response.status_code == 400
    assert "unknown format" in str(response.data)


@pytest.mark.parametrize("who", ["bob", "mallory"])
def test_only_owners_export(project, client_for, who, request):
    response = client_for(request.getfixturevalue(who)).get(f"/api/v1/projects/{project.pk}/export/")
    assert response.status_code == (403 if who == "bob" else 404)  # a stranger learns nothing
