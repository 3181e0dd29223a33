"""The likely-error API: checks, the likely-errors queue and its verdicts, task fields and filters, the quality
figures, exports and splits. A check is run in the test's process on a small pile with planted wrong answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labeling import label_errors, quality, splits
from labeling.models import Audit, Batch, BatchStatus, DecidedBy, ErrorReview, LabelCheck, Task

from .label_error_data import labeled_pile

pytestmark = pytest.mark.django_db


@pytest.fixture
def checked(project: Any, make_batch: Any, bob: Any) -> dict[str, Any]:
    """60 answered tasks, three planted wrong (rows 3, 22, 41), checked."""
    pile = labeled_pile(project, make_batch, [bob], n=60, wrong={3, 22, 41})
    check, _ = label_errors.schedule_check(project=project)
    label_errors.run_check(check_id=check.pk)
    pile["check"] = LabelCheck.objects.get(pk=check.pk)
    return pile


def queue(client: Any, project: Any, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/projects/{project.pk}/likely-errors/", params)
    assert response.status_code == 200, response.data
    return response.data


def test_the_queue_shows_the_lowest_scores_first(project, carol, client_for, checked):
    rows = queue(client_for(carol), project)
    assert len(rows) == 20
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores)
    assert {r["task"] for r in rows[:3]} == checked["wrong_ids"]
    first = rows[0]
    assert first["likely_error"] is True and first["suggested"] != first["answer"]
    assert first["image_url"].startswith("http://testserver/media/")
    assert len(queue(client_for(carol), project, limit=5, batch=checked["batch"].pk)) == 5


def test_a_correction_overrides_the_answer_as_an_audit_correction_does(project, carol, client_for, checked):
    client = client_for(carol)
    task_id = queue(client, project)[0]["task"]
    right = checked["choices"][checked["truth"][task_id]].pk
    response = client.post(f"/api/v1/tasks/{task_id}/likely-error-review/", {"correct": False, "choice": right},
                           format="json")
    assert response.status_code == 201, response.data
    assert response.data["verdict"] == "incorrect" and response.data["corrected_choice"] == right
    task = Task.objects.get(pk=task_id)
    assert (task.final_choice_id, task.decided_by) == (right, DecidedBy.AUDIT)
    assert task_id not in {r["task"] for r in queue(client, project, limit=200)}
    # The override holds after relabeling, as an audit's does (consensus.resolve_task).
    detail = client.get(f"/api/v1/tasks/{task_id}/").data
    assert detail["label_quality"]["stale"] is True and detail["answer"] == task.final_choice.label
    # Not an audit: nothing enters the batch's error rate.
    assert not Audit.objects.exists()
    figures = client.get(f"/api/v1/batches/{checked['batch'].pk}/quality/").data
    assert figures["audited"] == 0 and figures["errors"] == 0


def test_a_confirmation_keeps_the_answer_and_the_task_leaves_the_queue(project, carol, client_for, checked):
    client = client_for(carol)
    row = queue(client, project)[5]
    response = client.post(f"/api/v1/tasks/{row['task']}/likely-error-review/", {"correct": True}, format="json")
    assert response.status_code == 201
    assert Task.objects.get(pk=row["task"]).final_choice_id == row["answer"]
    assert row["task"] not in {r["task"] for r in queue(client, project, limit=200)}
    # Wrong, with the same choice, is a confirmation too.
    other = queue(client, project)[5]
    response = client.post(f"/api/v1/tasks/{other['task']}/likely-error-review/",
                           {"correct": False, "choice": other["answer"]}, format="json")
    assert response.data["verdict"] == "correct"


def test_a_second_verdict_on_the_same_answer_is_refused(project, alice, carol, client_for, checked):
    task_id = queue(client_for(carol), project)[0]["task"]
    right = checked["choices"][checked["truth"][task_id]].pk
    url = f"/api/v1/tasks/{task_id}/likely-error-review/"
    assert client_for(carol).post(url, {"correct": False, "choice": right}, format="json").status_code == 201
    again = client_for(alice).post(url, {"correct": False, "choice": right}, format="json")
    assert again.status_code == 409 and again.data["code"] == "already_reviewed"
    assert ErrorReview.objects.filter(task_id=task_id).count() == 1


def test_bad_verdicts_are_refused(project, bob, carol, client_for, checked, make_batch):
    client = client_for(carol)
    task_id = queue(client, project)[0]["task"]
    url = f"/api/v1/tasks/{task_id}/likely-error-review/"
    missing = client.post(url, {"correct": False}, format="json")
    assert missing.status_code == 400 and "say which choice" in missing.data["detail"]
    foreign = client.post(url, {"correct": False, "choice": 999_999}, format="json")
    assert foreign.status_code == 400 and foreign.data["code"] == "bad_choice"
    unknown = client.post(url, {"correct": True, "why": "x"}, format="json")
    assert unknown.status_code == 400 and "why" in str(unknown.data)
    unscored = make_batch(project, 1, kind="production", seed=900).tasks.get()
    response = client.post(f"/api/v1/tasks/{unscored.pk}/likely-error-review/", {"correct": True}, format="json")
    assert response.status_code == 409 and response.data["code"] == "not_scored"
    # bob answered every task: he may not review his own answers.
    own = client_for(bob).post(url, {"correct": True}, format="json")
    assert own.status_code == 403  # annotators may not review at all
    assert not ErrorReview.objects.exists()


def test_a_reviewer_never_sees_or_reviews_their_own_answers(project, alice, carol, client_for, make_batch):
    labeled_pile(project, make_batch, [carol], n=30, wrong={4})  # reviewers may annotate too
    check, _ = label_errors.schedule_check(project=project)
    label_errors.run_check(check_id=check.pk)
    assert queue(client_for(carol), project) == []
    first = queue(client_for(alice), project)[0]
    response = client_for(carol).post(f"/api/v1/tasks/{first['task']}/likely-error-review/", {"correct": True},
                                      format="json")
    assert response.status_code == 409 and response.data["code"] == "own_answer"
    assert not ErrorReview.objects.exists()


def test_strangers_get_404_and_annotators_403(project, bob, mallory, client_for, checked):
    task_id = checked["tasks"][0].pk
    for user, code in ((mallory, 404), (bob, 403)):
        client = client_for(user)
        assert client.get(f"/api/v1/projects/{project.pk}/likely-errors/").status_code == code
        assert client.post(f"/api/v1/tasks/{task_id}/likely-error-review/", {"correct": True},
                           format="json").status_code == code
        assert client.get(f"/api/v1/label-checks/{checked['check'].pk}/").status_code == code
        assert client.get(f"/api/v1/projects/{project.pk}/label-quality/").status_code == code
        assert client.post(f"/api/v1/projects/{project.pk}/label-checks/", {}, format="json").status_code == code


def test_only_owners_start_checks_and_read_the_figures(project, carol, client_for, checked):
    assert client_for(carol).post(f"/api/v1/projects/{project.pk}/label-checks/", {}, format="json").status_code == 403
    assert client_for(carol).get(f"/api/v1/projects/{project.pk}/label-quality/").status_code == 403
    assert client_for(carol).get(f"/api/v1/projects/{project.pk}/label-checks/").status_code == 200


def test_an_owner_queues_a_check_once_per_scope(project, alice, client_for, checked):
    client = client_for(alice)
    url = f"/api/v1/projects/{project.pk}/label-checks/"
    first = client.post(url, {"batch": checked["batch"].pk}, format="json")
    assert first.status_code == 201 and first.data["status"] == "queued" and first.data["batch"] == checked["batch"].pk
    again = client.post(url, {"batch": checked["batch"].pk}, format="json")
    assert again.status_code == 200 and again.data["id"] == first.data["id"]
    assert client.post(url, {}, format="json").status_code == 201  # the whole project is another scope
    other = Batch.objects.exclude(project=project).first()
    bad = client.post(url, {"batch": 999_999 if other is None else other.pk}, format="json")
    assert bad.status_code == 400 and "batch" in bad.data["fields"]
    assert client.post(url, {"batches": [1]}, format="json").status_code == 400
    listed = client.get(url).data
    assert [c["id"] for c in listed][-1] == checked["check"].pk


def test_a_failed_check_says_why_in_the_api(project, alice, client_for, make_batch, bob):
    labeled_pile(project, make_batch, [bob], n=10, embed=False)
    check, _ = label_errors.schedule_check(project=project)
    with pytest.raises(Exception, match="no embeddings"):
        label_errors.run_check(check_id=check.pk)
    data = client_for(alice).get(f"/api/v1/label-checks/{check.pk}/").data
    assert data["status"] == "failed" and "compute embeddings" in data["error"]
    assert client_for(alice).get(f"/api/v1/projects/{project.pk}/label-quality/").data["latest"]["status"] == "failed"


def test_task_listing_fields_filters_and_order(project, alice, client_for, checked):
    client = client_for(alice)
    base = {"project": project.pk, "page_size": 1000}
    listed = client.get("/api/v1/tasks/", base).data["results"]
    assert all(t["label_quality"] is not None for t in listed)
    sample = listed[0]["label_quality"]
    assert set(sample) == {"score", "likely_error", "suggested", "check", "stale"} and sample["stale"] is False
    flagged = client.get("/api/v1/tasks/", {**base, "likely_error": "true"}).data["results"]
    assert checked["wrong_ids"] <= {t["id"] for t in flagged}
    assert all(t["label_quality"]["likely_error"] for t in flagged)
    clean = client.get("/api/v1/tasks/", {**base, "likely_error": "false"}).data["results"]
    assert len(clean) + len(flagged) == 60
    low = client.get("/api/v1/tasks/", {**base, "label_quality_max": 0.5}).data["results"]
    assert all(t["label_quality"]["score"] <= 0.5 for t in low)
    ordered = client.get("/api/v1/tasks/", {"project": project.pk, "ordering": "label_quality", "page_size": 7})
    first = [t["label_quality"]["score"] for t in ordered.data["results"]]
    assert first == sorted(first) and {t["id"] for t in ordered.data["results"][:3]} == checked["wrong_ids"]
    rest = client.get(ordered.data["next"]).data["results"]  # the cursor walks on in score order
    assert min(t["label_quality"]["score"] for t in rest) >= first[-1]
    assert {t["id"] for t in rest}.isdisjoint({t["id"] for t in ordered.data["results"]})


@pytest.mark.parametrize("params, field", [({"likely_error": "maybe"}, "likely_error"),
                                           ({"ordering": "score"}, "ordering"),
                                           ({"label_quality_max": "2"}, "label_quality_max")])
def test_a_bad_filter_value_is_a_400_naming_it(project, alice, client_for, params, field):
    response = client_for(alice).get("/api/v1/tasks/", {"project": project.pk, **params})
    assert response.status_code == 400 and field in response.data["fields"]


def test_a_bad_queue_parameter_is_a_400_naming_it(project, carol, client_for):
    response = client_for(carol).get(f"/api/v1/projects/{project.pk}/likely-errors/", {"limit": 0})
    assert response.status_code == 400 and "limit" in response.data["fields"]
    response = client_for(carol).get(f"/api/v1/projects/{project.pk}/likely-errors/", {"order": "x"})
    assert response.status_code == 400 and "order" in str(response.data)


def test_the_quality_figures_count_what_the_review_found(project, alice, carol, client_for, checked):
    client = client_for(carol)
    for row in queue(client, project)[:4]:
        body = ({"correct": False, "choice": checked["choices"][checked["truth"][row["task"]]].pk}
                if row["task"] in checked["wrong_ids"] else {"correct": True})
        assert client.post(f"/api/v1/tasks/{row['task']}/likely-error-review/", body, format="json").status_code == 201
    data = client_for(alice).get(f"/api/v1/projects/{project.pk}/label-quality/").data
    (batch,) = data["batches"]
    assert (batch["batch"], batch["scored"], batch["reviewed"], batch["found"]) == (checked["batch"].pk, 60, 4, 3)
    assert batch["left"] == max(0.0, round(batch["estimated_errors"] - 3, 2))
    assert "confident joint" in batch["estimate_method"]
    assert data["queue"] == 56 and data["latest"]["scored"] == 60
    assert [a["username"] for a in data["annotators"]] == ["bob"] and data["annotators"][0]["labeled"] == 60


def test_exports_carry_the_label_quality_score(project, alice, client_for, checked):
    response = client_for(alice).get(f"/api/v1/projects/{project.pk}/export/", {"format": "json"})
    rows = json.loads(b"".join(response.streaming_content))
    by_id = {r["id"]: r for r in rows}
    wrong = next(iter(checked["wrong_ids"]))
    assert by_id[wrong]["label_quality"]["likely_error"] is True and by_id[wrong]["label_quality"]["score"] < 0.5
    csv = b"".join(client_for(alice).get(f"/api/v1/projects/{project.pk}/export/", {"format": "csv"})
                   .streaming_content).decode("utf-8-sig")
    header = csv.splitlines()[0].split(",")
    assert header[-2:] == ["label_quality", "likely_error"]


def test_a_split_can_leave_out_tasks_under_a_label_quality(project, alice, checked):
    Batch.objects.filter(pk=checked["batch"].pk).update(status=BatchStatus.ACCEPTED)
    plain = splits.build_split(project=project, created_by=alice)
    strict = splits.build_split(project=project, created_by=alice, min_label_quality=0.5)
    # Rows 3 and 41 were answered Anime and Photo (domains B and A); row 22 Neither, excluded anyway.
    assert strict.counts["below_label_quality"] >= 2
    assert strict.counts["total"] + strict.counts["below_label_quality"] == plain.counts["total"]
    assert strict.options["min_label_quality"] == 0.5
    # A corrected answer is no longer the one scored: it stays.
    task = checked["tasks"][3]
    quality.override_answer(task_id=task.pk, choice=checked["choices"][checked["truth"][task.pk]])
    again = splits.build_split(project=project, created_by=alice, min_label_quality=0.5)
    assert again.counts["below_label_quality"] == strict.counts["below_label_quality"] - 1


def test_the_split_route_takes_min_label_quality_and_refuses_a_bad_one(project, alice, client_for, checked):
    Batch.objects.filter(pk=checked["batch"].pk).update(status=BatchStatus.ACCEPTED)
    url = f"/api/v1/projects/{project.pk}/splits/"
    bad = client_for(alice).post(url, {"min_label_quality": 1.5}, format="json")
    assert bad.status_code == 400 and "min_label_quality" in bad.data["fields"]
    made = client_for(alice).post(url, {"min_label_quality": 0.5}, format="json")
    assert made.status_code == 201 and made.data["counts"]["below_label_quality"] >= 2
