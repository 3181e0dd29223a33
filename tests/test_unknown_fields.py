"""The API refuses what it does not know: unknown fields get a 400 naming them and the accepted ones."""

from __future__ import annotations

import importlib
import inspect

import pytest
from rest_framework import serializers

from labeling.models import Audit

pytestmark = pytest.mark.django_db


def test_an_audit_with_a_misspelt_field_draws_nothing_and_says_what_is_accepted(project, make_batch, alice, bob,
                                                                                 client_for):
    from labeling import answers, leasing

    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 6, kind="production", seed=5100)
    anime = project.choices.get(label="Anime").pk
    while (task := leasing.lease_next_task(project=project, annotator=bob)) is not None:
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime, duration_ms=500)
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/audit/", {"sample_size": 20}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "sample_size" in body["fields"]
    assert "size" in body["fields"]["sample_size"][0] and "width" in body["fields"]["sample_size"][0]
    assert body["detail"].startswith("sample_size: unknown field")
    assert not Audit.objects.exists()


def test_a_project_with_an_unknown_setting_is_not_created(alice, client_for):
    from labeling.models import Project

    choice = {"label": "A", "hotkey": "1", "domain": "A"}
    response = client_for(alice).post("/api/v1/projects/", {"name": "P", "overlapp": 3, "choices": [choice]},
                                      format="json")
    assert response.status_code == 400 and "overlapp" in response.json()["fields"]
    response = client_for(alice).post("/api/v1/projects/", {"name": "P", "choices": [{**choice, "colour": "red"}]},
                                      format="json")
    assert response.status_code == 400 and "colour" in str(response.json()["fields"]["choices"])
    assert not Project.objects.exists()


def test_a_bulk_answer_or_url_upload_with_an_unknown_envelope_key_is_refused(project, make_batch, alice, bob,
                                                                               client_for):
    response = client_for(bob).post(f"/api/v1/projects/{project.pk}/annotations/bulk/",
                                    {"answer": [], "answers": []}, format="json")
    assert response.status_code == 400 and "answer" in response.json()["fields"]
    batch = make_batch(project, 0, finalize=False)
    response = client_for(alice).post(f"/api/v1/batches/{batch.pk}/tasks/",
                                      {"task": [{"image_url": "https://example.org/a.png"}]}, format="json")
    assert response.status_code == 400 and "task" in response.json()["fields"]
    assert not batch.tasks.exists()


@pytest.mark.parametrize("module", ["labeling.serializers", "labeling.api", "labeling.quality_api",
                                    "training.serializers", "training.api", "labeling.assist_api",
                                    "labeling.label_errors_api"])
def test_every_serializer_of_the_project_refuses_unknown_fields(module):
    from winnow.serializers import RefuseUnknownFields

    mod = importlib.import_module(module)
    loose = [name for name, cls in inspect.getmembers(mod, inspect.isclass)
             if issubclass(cls, serializers.Serializer) and cls.__module__ == module
             and not issubclass(cls, RefuseUnknownFields)]
    assert loose == []
