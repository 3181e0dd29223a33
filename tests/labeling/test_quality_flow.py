"""Quality control through the API: calibration review, gold, pauses, audits, relabeling, export."""

import json
import threading

import pytest
from django.db import connection

from labeling import answers, ingest, leasing, projects, quality, reports
from labeling.models import Audit, Batch, Membership, Task

pytestmark = pytest.mark.django_db


def label_all(project, annotator, pick):
    """Lease and answer every task the annotator can get; `pick(task)` returns a choice label."""
    choices = {c.label: c.pk for c in project.choices.all()}
    while (task := leasing.lease_next_task(project=project, annotator=annotator)) is not None:
        answers.submit_annotation(task=task, annotator=annotator, choice_id=choices[pick(task)], duration_ms=800)


def choice_id(project, label):
    return project.choices.get(label=label).pk


@pytest.fixture
def reviewed_calibration(project, alice, bob, client_for, make_batch):
    """A labeled calibration batch of 4: bob answered Photorealistic throughout; the owner says the
    last one is Anime. Calibration approved."""
    batch = make_batch(project, 4, kind="calibration", seed=500)
    label_all(project, bob, lambda t: "Photorealistic")
    client = client_for(alice)
    tasks = list(batch.tasks.order_by("id"))
    for task in tasks[:3]:
        assert client.post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": choice_id(project, "Photorealistic")}).status_code == 200
    response = client.post(f"/api/v1/tasks/{tasks[3].pk}/gold/", {"choice": choice_id(project, "Anime")})
    assert response.status_code == 200 and response.data["answer"] == "Anime"
    assert client.post(f"/api/v1/projects/{project.pk}/approve-calibration/").status_code == 200
    return batch


def test_the_calibration_report_scores_answers_against_the_owners_gold(reviewed_calibration, project, alice, client_for):
    report = client_for(alice).get(f"/api/v1/projects/{project.pk}/calibration/").data
    assert report["reviewed"] == 4 and report["answers"] == 4
    assert report["accuracy"] == 0.75
    assert report["per_annotator"]["bob"] == {"correct": 3, "total": 4, "accuracy": 0.75}
    assert report["per_choice"]["Anime"]["accuracy"] == 0.0
    assert report["labels"] == ["Photorealistic", "Anime", "Neither"]
    assert report["confusion"] == [[3, 0, 0], [1, 0, 0], [0, 0, 0]]  # rows: gold, columns: answer
    assert report["median_duration_ms"] == 800
    corrected = Task.objects.get(pk=reviewed_calibration.tasks.order_by("id").last().pk)
    assert corrected.final_choice.label == "Anime" and corrected.decided_by == "gold"


def test_only_owners_review_calibration(reviewed_calibration, project, bob, carol, mallory, client_for):
    task = reviewed_calibration.tasks.first()
    for user, refused in ((bob, 403), (carol, 403), (mallory, 404)):  # a stranger learns nothing
        assert client_for(user).post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": choice_id(project, "Anime")}).status_code == refused
        assert client_for(user).get(f"/api/v1/projects/{project.pk}/calibration/").status_code == refused
    task.refresh_from_db()
    assert task.gold_choice.label == "Photorealistic"


def test_production_tasks_cannot_be_made_gold(reviewed_calibration, project, alice, client_for, make_batch):
    production = make_batch(project, 3, kind="production", seed=600)
    task = production.tasks.filter(is_gold=False).first()
    response = client_for(alice).post(f"/api/v1/tasks/{task.pk}/gold/", {"choice": choice_id(project, "Anime")})
    assert response.status_code == 409
    task.refresh_from_db()
    assert not task.is_gold


def test_gold_is_mixed_into_production_at_the_gold_rate(reviewed_calibration, project, make_batch):
    project.gold_rate = 0.2
    project.save()
    production = make_batch(project, 10, kind="production", seed=700)
    gold = production.tasks.filter(is_gold=True)
    assert gold.count() == 2
    assert all(t.gold_source.batch_id == reviewed_calibration.pk and t.asset_id == t.gold_source.asset_id for t in gold)
    # Spread among the batch, not appended at the end of the queue.
    created = sorted(production.tasks.values_list("created_at", flat=True))
    assert created[0] <= min(t.created_at for t in gold) and max(t.created_at for t in gold) <= created[-1]


def test_an_annotator_under_the_gold_threshold_is_paused_and_can_be_reinstated(
    reviewed_calibration, project, alice, dave, client_for, make_batch
):
    project.gold_rate = 0.5
    project.min_gold_answers = 2
    project.min_gold_accuracy = 0.9
    project.save()
    make_batch(project, 4, kind="production", seed=800)
    # dave answers Neither to everything: every gold answer is wrong.
    with pytest.raises(Exception, match="paused"):
        label_all(project, dave, lambda t: "Neither")
    membership = Membership.objects.get(project=project, user=dave)
    assert membership.paused_at is not None and "gold accuracy 0%" in membership.paused_reason
    assert client_for(dave).post(f"/api/v1/projects/{project.pk}/next-task/").status_code == 403
    table = {row["username"]: row for row in client_for(alice).get(f"/api/v1/projects/{project.pk}/annotators/").data}
    assert table["dave"]["paused"] and table["dave"]["gold_accuracy"] == 0.0 and table["dave"]["gold_answers"] >= 2
    assert table["bob"]["gold_accuracy"] == 0.75
    answered = table["dave"]["answers"]
    relabel = client_for(alice).post(f"/api/v1/projects/{project.pk}/annotators/dave/relabel/")
    assert relabel.status_code == 200 and relabel.data["requeued"] >= 1
    assert relabel.data["requeued"] <= answered
    assert not Task.objects.filter(batch__kind="production", annotations__annotator=dave,
                                   annotations__discarded_at__isnull=True, is_gold=False).exists()
    assert client_for(alice).post(f"/api/v1/projects/{project.pk}/annotators/dave/reinstate/").status_code == 200
    assert client_for(dave).post(f"/api/v1/projects/{project.pk}/next-task/").status_code == 200


@pytest.fixture
def labeled_production(reviewed_calibration, project, bob, make_batch):
    """20 production tasks: bob answers Photorealistic for even seeds, Anime for odd ones."""
    project.gold_rate = 0
    project.save()
    batch = make_batch(project, 20, kind="production", seed=900)
    label_all(project, bob, lambda t: "Anime" if t.pk % 2 else "Photorealistic")
    batch.refresh_from_db()
    assert batch.status == "labeled"
    return batch


def test_an_audit_plan_is_shown_then_a_stratified_sample_is_drawn_with_its_seed(labeled_production, alice, client_for):
    client = client_for(alice)
    plan = client.get(f"/api/v1/batches/{labeled_production.pk}/audit/?size=10").data
    assert plan["size"] == 10 and plan["population"] == 20
    assert plan["clean_audits_needed"] == 189  # z²·0.98/0.02 = 188.2: Wilson bound under the default 2%
    assert sum(plan["strata"].values()) == 10 and set(plan["strata"]) == {"Photorealistic", "Anime"}
    response = client.post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 10, "seed": 42}, format="json")
    assert response.status_code == 201
    assert response.data["status"] == "audited" and response.data["seed"] == 42
    sampled = response.data["tasks"]
    assert len(set(sampled)) == 10
    # The same seed draws the same sample.
    Audit.objects.all().delete()
    Batch.objects.filter(pk=labeled_production.pk).update(status="labeled", audit_round=0)
    again = client.post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 10, "seed": 42}, format="json")
    assert sorted(again.data["tasks"]) == sorted(sampled)
    assert client.post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 10}, format="json").status_code == 409


def test_a_clean_audit_accepts_and_an_audit_with_errors_rejects_then_relabels_only_the_failed_choice(
    labeled_production, project, alice, bob, carol, client_for
):
    client = client_for(alice)
    drawn = client.post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 6, "seed": 1}, format="json").data
    reviewer = client_for(carol)
    tasks = Task.objects.in_bulk(drawn["tasks"])
    anime_sampled = [t for t in tasks.values() if t.final_choice.label == "Anime"]
    wrong = anime_sampled[0]
    for task in tasks.values():
        if task.pk == wrong.pk:
            body = {"correct": False, "choice": choice_id(project, "Neither")}
        else:
            body = {"correct": True}
        assert reviewer.post(f"/api/v1/tasks/{task.pk}/audit/", body, format="json").status_code == 200
    quality_figures = client.get(f"/api/v1/batches/{labeled_production.pk}/quality/").data
    assert quality_figures["audited"] == 6 and quality_figures["errors"] == 1
    assert quality_figures["decision"] == "rejected"
    assert quality_figures["wilson"][1] > project.max_error_rate
    assert quality_figures["per_choice"]["Anime"]["errors"] == 1
    assert quality_figures["clopper_pearson"][0] < quality_figures["error_rate"] < quality_figures["clopper_pearson"][1]
    wrong.refresh_from_db()
    assert wrong.final_choice.label == "Neither" and wrong.decided_by == "audit"
    # The export carries the correction and the verdict.
    rows = json.loads(b"".join(client.get(f"/api/v1/projects/{project.pk}/export/?format=json").streaming_content))
    exported = next(r for r in rows if r["id"] == wrong.pk)
    assert exported["answer"] == "Neither" and exported["decided_by"] == "audit"
    assert exported["audit"] == {"verdict": "incorrect", "corrected": "Neither", "reviewer": "carol", "round": 1}
    # Only the tasks answered Anime (the failing choice) go back; the corrected one keeps its correction.
    anime_total = Task.objects.filter(batch=labeled_production, final_choice__label="Anime").count()
    relabel = client.post(f"/api/v1/batches/{labeled_production.pk}/relabel/", {"scope": "failed"}, format="json")
    assert relabel.status_code == 200 and relabel.data["requeued"] == anime_total
    labeled_production.refresh_from_db()
    assert labeled_production.status == "labeling"
    assert Task.objects.filter(batch=labeled_production, status="queued").count() == anime_total
    wrong.refresh_from_db()
    assert wrong.status == "completed" and wrong.final_choice.label == "Neither"
    # bob labels them again; the next audit round is clean and accepts the batch.
    label_all(project, bob, lambda t: "Anime")
    labeled_production.refresh_from_db()
    assert labeled_production.status == "labeled"
    second = client.post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 20}, format="json").data
    assert second["round"] == 2
    for task_id in second["tasks"]:
        reviewer.post(f"/api/v1/tasks/{task_id}/audit/", {"correct": True}, format="json")
    # 19 clean audits cannot prove an error rate under 2%: still rejected, with the figures to show why.
    figures = client.get(f"/api/v1/batches/{labeled_production.pk}/quality/").data
    assert figures["round"] == 2 and figures["errors"] == 0
    assert figures["decision"] == ("accepted" if figures["wilson"][1] <= project.max_error_rate else "rejected")


def test_a_small_batch_with_a_generous_threshold_is_accepted(labeled_production, project, alice, carol, client_for):
    project.max_error_rate = 0.3
    project.save()
    drawn = client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 20}, format="json").data
    for task_id in drawn["tasks"]:
        client_for(carol).post(f"/api/v1/tasks/{task_id}/audit/", {"correct": True}, format="json")
    labeled_production.refresh_from_db()
    assert labeled_production.status == "accepted"


def test_reviewers_cannot_audit_their_own_answers_or_tasks_outside_the_sample(labeled_production, project, alice, bob, client_for):
    drawn = client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 2}, format="json").data
    project.memberships.filter(user=bob).update(role="reviewer")
    response = client_for(bob).post(f"/api/v1/tasks/{drawn['tasks'][0]}/audit/", {"correct": True}, format="json")
    assert response.status_code == 409 and response.data["code"] == "own_answer"
    outside = labeled_production.tasks.exclude(pk__in=drawn["tasks"]).first()
    response = client_for(alice).post(f"/api/v1/tasks/{outside.pk}/audit/", {"correct": True}, format="json")
    assert response.status_code == 409 and response.data["code"] == "not_sampled"
    assert not Audit.objects.exclude(verdict="pending").exists()


def test_annotators_and_strangers_cannot_audit(labeled_production, project, alice, dave, mallory, client_for):
    drawn = client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 2}, format="json").data
    for user, refused in ((dave, 403), (mallory, 404)):  # a stranger learns nothing
        assert client_for(user).post(f"/api/v1/tasks/{drawn['tasks'][0]}/audit/", {"correct": True}, format="json").status_code == refused
        assert client_for(user).post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 2}, format="json").status_code == refused
    assert client_for(mallory).get(f"/api/v1/batches/{labeled_production.pk}/quality/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_auditing_one_task_at_once_count_once(project, alice, bob, carol, make_user, make_batch):
    erin = make_user("erin")
    projects.add_member(project=project, username="erin", role="reviewer")
    batch = make_batch(project, 4, kind="calibration", seed=1000)
    label_all(project, bob, lambda t: "Photorealistic")
    quality.set_gold(task=batch.tasks.first(), choice_id=choice_id(project, "Photorealistic"))
    projects.approve_calibration(project=project)
    project.gold_rate = 0
    project.save()
    production = make_batch(project, 6, kind="production", seed=1100)
    label_all(project, bob, lambda t: "Anime")
    production.refresh_from_db()
    _, audits = quality.draw_audit_sample(batch=production, size=6, seed=3)
    outcomes = []
    barrier = threading.Barrier(2)

    def review(user, task_id):
        try:
            barrier.wait()
            quality.submit_audit(task=Task.objects.get(pk=task_id), reviewer=user, correct=False,
                                 choice_id=choice_id(project, "Neither"))
            outcomes.append("ok")
        except Exception as exc:  # the loser's 409 is the point of the test
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    for audit in audits:
        threads = [threading.Thread(target=review, args=(u, audit.task_id)) for u in (carol, erin)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outcomes.count("ok") == 6 and outcomes.count("Conflict") == 6
    figures = reports.batch_quality(batch=Batch.objects.get(pk=production.pk))
    assert figures["audited"] == 6 and figures["errors"] == 6 and figures["decision"] == "rejected"


def test_relabeling_the_whole_rejected_batch_returns_every_task_to_the_queue(labeled_production, project, alice, carol, client_for):
    drawn = client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/audit/", {"size": 3, "seed": 5}, format="json").data
    for task_id in drawn["tasks"]:
        client_for(carol).post(f"/api/v1/tasks/{task_id}/audit/", {"correct": False, "choice": choice_id(project, "Neither")}, format="json")
    labeled_production.refresh_from_db()
    assert labeled_production.status == "rejected"
    response = client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/relabel/", {"scope": "all"}, format="json")
    assert response.data["requeued"] == 17  # 20 minus the 3 the audit corrected
    assert Task.objects.filter(batch=labeled_production, status="queued").count() == 17
    assert client_for(alice).post(f"/api/v1/batches/{labeled_production.pk}/relabel/", {"scope": "all"}, format="json").status_code == 409


def test_consensus_offers_dawid_skene_beside_the_majority(project, alice, bob, dave, carol, client_for, make_batch):
    project.overlap = 3
    project.save()
    batch = make_batch(project, 3, kind="calibration", seed=1200)
    label_all(project, bob, lambda t: "Anime")
    label_all(project, dave, lambda t: "Anime")
    label_all(project, carol, lambda t: "Photorealistic")
    response = client_for(alice).get(f"/api/v1/batches/{batch.pk}/consensus/")
    assert response.status_code == 200
    rows = response.data["tasks"]
    assert len(rows) == 3
    assert all(r["majority"] == "Anime" and r["agreement"] == pytest.approx(2 / 3) for r in rows)
    assert all(r["flagged"] for r in rows)  # two against one is low agreement
    quality_figures = client_for(alice).get(f"/api/v1/batches/{batch.pk}/quality/").data
    assert quality_figures["consensus"]["low_agreement"] == 3


def test_my_gold_accuracy_stays_hidden_until_a_whole_block_of_gold_answers(reviewed_calibration, project, bob, client_for):
    response = client_for(bob).get(f"/api/v1/projects/{project.pk}/progress/")
    assert response.status_code == 200
    assert response.data["gold_accuracy"] is None  # 4 gold answers so far, under one block


def test_gold_goes_between_tasks_even_when_a_whole_upload_shares_one_timestamp(reviewed_calibration, project, alice):
    """A URL upload stores its tasks with one created_at; leasing orders by (created_at, id), so a copy
    stamped with that time would sort after the whole upload. Each copy must sit right after one task."""
    from datetime import timedelta

    project.refresh_from_db()
    project.gold_rate = 0.1
    project.save()
    batch = projects.create_batch(project=project, name="scraped", kind="production", created_by=alice)
    ingest.ingest_urls(batch=batch, items=[{"image_url": f"http://127.0.0.1:9/{i}.png"} for i in range(40)])
    regular = batch.tasks.filter(is_gold=False)
    assert regular.values("created_at").distinct().count() == 1  # one request, one timestamp
    projects.finalize_batch(batch=batch)

    in_lease_order = list(batch.tasks.order_by("created_at", "id").values_list("is_gold", "created_at"))
    assert sum(gold for gold, _ in in_lease_order) == 4
    assert not in_lease_order[0][0]  # a copy goes after a task, never first
    times = [t for gold, t in in_lease_order if not gold]
    assert all(later - earlier >= timedelta(microseconds=2) for earlier, later in zip(times, times[1:], strict=False))
    for previous, (gold, created_at) in zip(in_lease_order, in_lease_order[1:], strict=False):
        if gold:  # right after the task before it, and before the task after it
            assert created_at - previous[1] == timedelta(microseconds=1) or previous[0]
    # Upload order kept: ids still increase along the regular tasks' new timestamps.
    ids = list(regular.order_by("created_at", "id").values_list("id", flat=True))
    assert ids == sorted(ids)


def test_spreading_a_batch_keeps_its_order_and_parts_ties(project, make_batch):
    from datetime import timedelta

    from django.utils import timezone

    batch = make_batch(project, 6, kind="calibration", seed=900)
    ids = list(batch.tasks.order_by("id").values_list("id", flat=True))
    now = timezone.now()
    Task.objects.filter(pk__in=ids[:4]).update(created_at=now)  # one request's tasks share a timestamp
    Task.objects.filter(pk__in=ids[4:]).update(created_at=now + timedelta(seconds=1))
    order = quality._spread_in_upload_order(batch)
    stored = list(batch.tasks.order_by("created_at", "id").values_list("id", "created_at"))
    assert [pk for pk, _ in stored] == ids and [t for _, t in stored] == order
    assert [t - now for t in order[:4]] == [timedelta(microseconds=2 * i) for i in range(4)]
    assert order[4] - now == timedelta(seconds=1) and order[5] - order[4] == timedelta(microseconds=2)
