"""GET /api/v1/projects/{id}/gold-accuracy/: each annotator's gold accuracy per day, for the quality page's chart."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import answers, leasing, quality
from labeling.models import Annotation

pytestmark = pytest.mark.django_db


def test_gold_answers_are_counted_per_annotator_and_day(project, alice, bob, client_for, make_batch):
    cal = make_batch(project, 4, kind="calibration", seed=1100)
    anime, photo = project.choices.get(label="Anime").pk, project.choices.get(label="Photorealistic").pk
    tasks = list(cal.tasks.order_by("id"))
    for i, task in enumerate(tasks):
        leasing.lease_next_task(project=project, annotator=bob)
        answers.submit_annotation(task=task, annotator=bob, choice_id=anime if i < 3 else photo, duration_ms=5)
        quality.set_gold(task=task, choice_id=anime)
    # Two answers a day earlier: one right (Anime), one wrong... then the other two today, one right.
    yesterday = timezone.now() - timedelta(days=1)
    Annotation.objects.filter(task__in=[tasks[0], tasks[3]]).update(created_at=yesterday)
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/gold-accuracy/")
    assert response.status_code == 200
    assert response.data["bucket"] == "day" and response.data["min_gold_accuracy"] == project.min_gold_accuracy
    [series] = response.data["series"]
    assert series["username"] == "bob"
    assert [(p["answers"], p["correct"], p["accuracy"]) for p in series["points"]] == [(2, 1, 0.5), (2, 2, 1.0)]
    weekly = client_for(alice).get(f"/api/v1/projects/{project.pk}/gold-accuracy/", {"bucket": "week"}).data
    assert sum(p["answers"] for p in weekly["series"][0]["points"]) == 4


def test_no_gold_answers_give_no_series(project, alice, client_for):
    assert client_for(alice).get(f"/api/v1/projects/{project.pk}/gold-accuracy/").data["series"] == []


def test_a_bad_bucket_is_refused(project, alice, client_for):
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/gold-accuracy/", {"bucket": "month"})
    assert response.status_code == 400 and "bucket" in response.data["fields"]


def test_only_owners_read_it_and_a_non_member_gets_404(project, bob, carol, mallory, client_for):
    assert client_for(bob).get(f"/api/v1/projects/{project.pk}/gold-accuracy/").status_code == 403
    assert client_for(carol).get(f"/api/v1/projects/{project.pk}/gold-accuracy/").status_code == 403
    assert client_for(mallory).get(f"/api/v1/projects/{project.pk}/gold-accuracy/").status_code == 404
