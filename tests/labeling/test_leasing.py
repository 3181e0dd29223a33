"""Leasing, answering, skipping, undoing and grid answers, through the API, and a 50-thread race on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from labeling import answers, hotpath, leasing, projects
from labeling.models import Annotation, BatchStatus, Lease, Membership, Role, Task, TaskStatus
from winnow.exceptions import Conflict

pytestmark = pytest.mark.django_db


def next_task(client, project):
    return client.post(f"/api/v1/projects/{project.pk}/next-task/")


def answer(client, task_id, choice_id, duration_ms=700):
    return client.post(f"/api/v1/tasks/{task_id}/annotations/", {"choice": choice_id, "duration_ms": duration_ms},
                       format="json")


def choice(project, label="Photorealistic"):
    return project.choices.get(label=label)


def set_overlap(project, overlap):
    project.overlap = overlap
    project.save(update_fields=["overlap"])


def expire_leases(**filters):
    Lease.objects.filter(**filters).update(expires_at=timezone.now() - timedelta(seconds=1))


# --- next-task --------------------------------------------------------------------------------


def test_next_task_leases_a_task_and_hides_what_hints_at_the_answer(project, bob, client_for, make_batch):
    make_batch(project, 3)
    response = next_task(client_for(bob), project)
    assert response.status_code == 200
    assert {"id", "asset", "lease_expires_at", "batch"} <= set(response.data)
    assert not {"is_gold", "answer", "annotations", "final_choice"} & set(response.data)
    assert response.data["asset"]["image_url"].startswith("http")
    lease = Lease.objects.get(annotator=bob)
    assert lease.task_id == response.data["id"] and lease.expires_at > timezone.now()


def test_asking_again_hands_back_the_same_unanswered_lease(project, bob, client_for, make_batch):
    make_batch(project, 3)
    client = client_for(bob)
    first = next_task(client, project).data["id"]
    assert next_task(client, project).data["id"] == first
    assert Lease.objects.filter(annotator=bob).count() == 1


def test_an_annotator_never_gets_a_task_they_already_answered(project, bob, client_for, make_batch):
    set_overlap(project, 2)
    make_batch(project, 3)
    client = client_for(bob)
    seen = []
    while (response := next_task(client, project)).status_code == 200:
        task_id = response.data["id"]
        assert task_id not in seen
        seen.append(task_id)
        assert answer(client, task_id, choice(project).pk).status_code == 201
    assert response.status_code == 204
    assert len(seen) == 3
    # Every task still waits for a second annotator, but not for bob.
    assert Task.objects.filter(status=TaskStatus.QUEUED).count() == 3


def test_a_task_is_never_leased_to_more_annotators_than_its_overlap(project, bob, dave, carol, client_for, make_batch):
    set_overlap(project, 2)
    make_batch(project, 2)
    first_bob = next_task(client_for(bob), project).data["id"]
    first_dave = next_task(client_for(dave), project).data["id"]
    assert first_bob == first_dave  # overlap 2: both may hold the first task
    third = next_task(client_for(carol), project).data["id"]
    assert third != first_bob
    assert Lease.objects.filter(task_id=first_bob).count() == 2


def test_answered_tasks_at_overlap_go_to_nobody_else(project, bob, dave, client_for, make_batch):
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    assert answer(client_for(bob), task_id, choice(project).pk).status_code == 201
    assert next_task(client_for(dave), project).status_code == 204


def test_expired_leases_go_back_to_the_pool(project, bob, dave, client_for, make_batch):
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    assert next_task(client_for(dave), project).status_code == 204
    expire_leases(annotator=bob)
    response = next_task(client_for(dave), project)
    assert response.status_code == 200 and response.data["id"] == task_id


def test_204_when_nothing_is_left(project, bob, client_for, make_batch):
    assert next_task(client_for(bob), project).status_code == 204
    make_batch(project, 2, finalize=False)  # an open batch is not handed out yet
    assert next_task(client_for(bob), project).status_code == 204


def test_a_non_member_can_neither_lease_nor_answer(project, bob, mallory, client_for, make_batch):
    make_batch(project, 1)
    assert next_task(client_for(mallory), project).status_code == 404
    task_id = next_task(client_for(bob), project).data["id"]
    assert answer(client_for(mallory), task_id, choice(project).pk).status_code == 404
    assert client_for(mallory).post(f"/api/v1/projects/{project.pk}/next-tasks/", {"count": 3}).status_code == 404
    assert Annotation.objects.count() == 0


def test_a_paused_annotator_is_refused_with_the_reason(project, bob, client_for, make_batch):
    make_batch(project, 1)
    Membership.objects.filter(user=bob).update(paused_at=timezone.now(), paused_reason="gold accuracy 40%")
    response = next_task(client_for(bob), project)
    assert response.status_code == 403 and "gold accuracy 40%" in response.data["detail"]


# --- answering --------------------------------------------------------------------------------


def test_submitting_twice_makes_one_annotation(project, bob, client_for, make_batch):
    make_batch(project, 2)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    first = answer(client, task_id, choice(project).pk)
    again = answer(client, task_id, choice(project).pk)
    assert first.status_code == 201 and again.status_code == 200
    assert again.data["id"] == first.data["id"]
    assert Annotation.objects.filter(task_id=task_id).count() == 1
    assert Task.objects.get(pk=task_id).annotation_count == 1


def test_answering_without_a_lease_is_refused_and_stores_nothing(project, bob, client_for, make_batch):
    batch = make_batch(project, 2)
    task = batch.tasks.first()
    response = answer(client_for(bob), task.pk, choice(project).pk)
    assert response.status_code == 409 and response.data["code"] == "lease_expired"
    assert "next task" in response.data["detail"]
    assert Annotation.objects.count() == 0


def test_answering_after_the_lease_expired_and_went_to_someone_else_is_refused(project, bob, dave, client_for, make_batch):
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    expire_leases(annotator=bob)
    assert next_task(client_for(dave), project).data["id"] == task_id
    response = answer(client_for(bob), task_id, choice(project).pk)
    assert response.status_code == 409 and response.data["code"] == "lease_expired"
    assert Annotation.objects.count() == 0
    assert answer(client_for(dave), task_id, choice(project).pk).status_code == 201


def test_an_expired_lease_nobody_took_still_accepts_the_answer(project, bob, client_for, make_batch):
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    expire_leases(annotator=bob)
    assert answer(client_for(bob), task_id, choice(project).pk).status_code == 201


def test_a_choice_from_another_project_is_refused(project, alice, bob, client_for, make_batch):
    other = projects.create_project(
        created_by=alice, fields={"name": "Other"},
        choices=[{"label": "X", "hotkey": "x", "domain": "A"}, {"label": "Y", "hotkey": "y", "domain": "B"}],
    )
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    response = answer(client_for(bob), task_id, other.choices.first().pk)
    assert response.status_code == 400 and response.data["code"] == "bad_choice"
    assert Annotation.objects.count() == 0
    assert Lease.objects.filter(annotator=bob, task_id=task_id).exists()  # still leased: answer properly


# --- next-tasks (lease ahead) -----------------------------------------------------------------


def test_next_tasks_holds_count_tasks_and_is_safe_to_repeat(project, bob, dave, client_for, make_batch):
    make_batch(project, 6)
    client = client_for(bob)
    url = f"/api/v1/projects/{project.pk}/next-tasks/"
    first = client.post(url, {"count": 4}, format="json")
    assert first.status_code == 200
    ids = [t["id"] for t in first.data["tasks"]]
    assert len(ids) == 4 and ids == sorted(ids)
    assert [t["id"] for t in client.post(url, {"count": 4}, format="json").data["tasks"]] == ids
    assert answer(client, ids[0], choice(project).pk).status_code == 201
    refill = [t["id"] for t in client.post(url, {"count": 4}, format="json").data["tasks"]]
    assert refill[:3] == ids[1:] and refill[3] not in ids
    # dave gets what is left, never bob's tasks (overlap 1).
    daves = [t["id"] for t in client_for(dave).post(url, {"count": 10}, format="json").data["tasks"]]
    assert len(daves) == 1 and daves[0] not in refill
    assert client_for(dave).post(url, {"count": 0}, format="json").status_code == 400
    assert client_for(dave).post(url, {"count": 101}, format="json").status_code == 400


def test_next_tasks_returns_an_empty_list_when_nothing_is_left(project, bob, client_for):
    response = client_for(bob).post(f"/api/v1/projects/{project.pk}/next-tasks/", {"count": 5}, format="json")
    assert response.status_code == 200 and response.data["tasks"] == []


# --- skip -------------------------------------------------------------------------------------


def test_skip_releases_the_lease_and_the_task_does_not_come_straight_back(project, bob, dave, client_for, make_batch):
    make_batch(project, 2)
    client = client_for(bob)
    skipped = next_task(client, project).data["id"]
    response = client.post(f"/api/v1/tasks/{skipped}/skip/")
    assert response.status_code == 200
    lease = Lease.objects.get(annotator=bob, task_id=skipped)
    assert lease.skipped_at is not None and not lease.is_active()
    following = next_task(client, project).data["id"]
    assert following != skipped
    assert answer(client, following, choice(project).pk).status_code == 201
    assert next_task(client, project).status_code == 204  # only the skipped task is left for bob
    assert next_task(client_for(dave), project).data["id"] == skipped  # free for others at once
    assert client.post(f"/api/v1/tasks/{skipped}/skip/").status_code == 200  # skipping twice is harmless


def test_a_skipped_task_comes_back_after_the_cooldown(project, bob, client_for, make_batch):
    make_batch(project, 1)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    client.post(f"/api/v1/tasks/{task_id}/skip/")
    assert next_task(client, project).status_code == 204
    Lease.objects.filter(annotator=bob).update(skipped_at=timezone.now() - leasing.SKIP_COOLDOWN - timedelta(seconds=1))
    response = next_task(client, project)
    assert response.status_code == 200 and response.data["id"] == task_id
    assert Lease.objects.get(annotator=bob).skipped_at is None


def test_skip_without_a_lease_or_after_answering_is_refused(project, bob, client_for, make_batch):
    batch = make_batch(project, 2)
    client = client_for(bob)
    unleased = batch.tasks.order_by("-id").first().pk
    response = client.post(f"/api/v1/tasks/{unleased}/skip/")
    assert response.status_code == 409 and response.data["code"] == "lease_expired"
    task_id = next_task(client, project).data["id"]
    answer(client, task_id, choice(project).pk)
    response = client.post(f"/api/v1/tasks/{task_id}/skip/")
    assert response.status_code == 409 and "undo" in response.data["detail"]
    assert Annotation.objects.live().count() == 1


# --- undo -------------------------------------------------------------------------------------


def test_undo_discards_my_answer_requeues_the_task_and_leases_it_back(project, bob, dave, client_for, make_batch):
    batch = make_batch(project, 1)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    answer(client, task_id, choice(project).pk)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LABELED
    response = client.post(f"/api/v1/tasks/{task_id}/undo/")
    assert response.status_code == 200 and response.data["id"] == task_id
    task = Task.objects.get(pk=task_id)
    assert task.status == TaskStatus.QUEUED and task.annotation_count == 0 and task.final_choice is None
    assert Annotation.objects.filter(task_id=task_id).count() == 1  # kept, as discarded
    assert Annotation.objects.live().filter(task_id=task_id).count() == 0
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LABELING and batch.labeled_at is None
    assert Lease.objects.get(task_id=task_id, annotator=bob).is_active()
    assert next_task(client_for(dave), project).status_code == 204  # still bob's
    assert next_task(client, project).data["id"] == task_id
    assert answer(client, task_id, choice(project, "Anime").pk).status_code == 201
    assert Task.objects.get(pk=task_id).final_choice.label == "Anime"


def test_undo_by_delete_with_overlap_keeps_the_other_answer(project, bob, dave, client_for, make_batch):
    set_overlap(project, 2)
    make_batch(project, 1)
    task_id = next_task(client_for(bob), project).data["id"]
    next_task(client_for(dave), project)
    answer(client_for(bob), task_id, choice(project).pk)
    answer(client_for(dave), task_id, choice(project).pk)
    assert Task.objects.get(pk=task_id).status == TaskStatus.COMPLETED
    response = client_for(dave).delete(f"/api/v1/tasks/{task_id}/annotations/mine/")
    assert response.status_code == 200
    task = Task.objects.get(pk=task_id)
    assert task.status == TaskStatus.QUEUED and task.annotation_count == 1
    assert list(Annotation.objects.live().filter(task=task).values_list("annotator__username", flat=True)) == ["bob"]


def test_undo_is_refused_when_there_is_nothing_to_undo_or_the_window_closed(project, bob, dave, client_for, make_batch):
    make_batch(project, 1)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    response = client.post(f"/api/v1/tasks/{task_id}/undo/")
    assert response.status_code == 409 and response.data["code"] == "nothing_to_undo"
    answer(client, task_id, choice(project).pk)
    assert client_for(dave).post(f"/api/v1/tasks/{task_id}/undo/").status_code == 409  # not dave's answer
    Annotation.objects.update(created_at=timezone.now() - timedelta(seconds=project.lease_seconds + 1))
    response = client.post(f"/api/v1/tasks/{task_id}/undo/")
    assert response.status_code == 409 and response.data["code"] == "undo_window_closed"
    assert Task.objects.get(pk=task_id).status == TaskStatus.COMPLETED
    assert Annotation.objects.live().count() == 1


def test_undo_is_refused_once_the_batch_is_in_audit(project, bob, client_for, make_batch):
    batch = make_batch(project, 1)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    answer(client, task_id, choice(project).pk)
    type(batch).objects.filter(pk=batch.pk).update(status=BatchStatus.AUDITED)
    response = client.post(f"/api/v1/tasks/{task_id}/undo/")
    assert response.status_code == 409 and response.data["code"] == "batch_closed"
    assert Annotation.objects.live().count() == 1


# --- bulk answers (grid mode) -----------------------------------------------------------------


def test_bulk_answers_report_each_item_and_store_only_the_good_ones(project, alice, bob, client_for, make_batch):
    make_batch(project, 5)
    client = client_for(bob)
    held = [t["id"] for t in client.post(f"/api/v1/projects/{project.pk}/next-tasks/", {"count": 3},
                                         format="json").data["tasks"]]
    unleased = Task.objects.exclude(pk__in=held).first().pk
    anime = choice(project, "Anime").pk
    answers = [
        {"task": held[0], "choice": anime, "duration_ms": 400},
        {"task": held[1], "choice": anime, "duration_ms": 400},
        {"task": held[0], "choice": anime, "duration_ms": 400},  # a repeat: duplicate
        {"task": unleased, "choice": anime},  # no lease
        {"task": held[2], "choice": 999_999},  # not a choice of this project
        {"task": 999_999, "choice": anime},  # not a task of this project
        {"task": "x", "choice": anime},  # malformed
    ]
    response = client.post(f"/api/v1/projects/{project.pk}/annotations/bulk/", {"answers": answers}, format="json")
    assert response.status_code == 200
    statuses = [r["status"] for r in response.data["results"]]
    assert statuses == ["created", "created", "duplicate", "rejected", "rejected", "rejected", "rejected"]
    codes = [r.get("code") for r in response.data["results"]]
    assert codes[3:] == ["lease_expired", "bad_choice", "not_found", "invalid"]
    assert response.data["summary"] == {"created": 2, "duplicate": 1, "rejected": 4}
    assert sorted(Annotation.objects.values_list("task_id", flat=True)) == sorted(held[:2])
    assert Annotation.objects.get(task_id=held[0]).duration_ms == 400
    assert Lease.objects.filter(annotator=bob, task_id=held[2]).exists()


def test_bulk_refuses_an_empty_or_oversized_list_and_non_members(project, bob, mallory, client_for, make_batch):
    url = f"/api/v1/projects/{project.pk}/annotations/bulk/"
    assert client_for(bob).post(url, {"answers": []}, format="json").status_code == 400
    too_many = [{"task": 1, "choice": 1}] * (answers.MAX_BULK_ANSWERS + 1)
    assert client_for(bob).post(url, {"answers": too_many}, format="json").status_code == 400
    assert client_for(mallory).post(url, {"answers": [{"task": 1, "choice": 1}]}, format="json").status_code == 404


# --- progress ---------------------------------------------------------------------------------


def test_progress_counts_open_batches_and_my_answers(project, bob, client_for, make_batch):
    batch = make_batch(project, 3)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    answer(client, task_id, choice(project).pk)
    response = client.get(f"/api/v1/projects/{project.pk}/progress/")
    assert response.status_code == 200
    assert response.data["mine"] == 1
    assert response.data["batches"] == [{"id": batch.pk, "name": batch.name, "done": 1, "remaining": 2, "total": 3}]


# --- the race ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_leasing_and_answering_make_exactly_overlap_answers_per_task(project, make_user, make_batch):
    """50 threads (25 annotators, two threads each, like two browser tabs) on PostgreSQL."""
    set_overlap(project, 2)
    tasks = 30
    make_batch(project, tasks)
    annotators = [make_user(f"racer{i}") for i in range(25)]
    for user in annotators:
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    choices = list(project.choices.values_list("id", flat=True))
    errors: list[BaseException] = []
    start = threading.Barrier(50)

    def work(user) -> None:
        try:
            start.wait()
            while (task := leasing.lease_next_task(project=project, annotator=user)) is not None:
                # Agreeing answers per task, so no tie asks for an extra annotator.
                try:
                    answers.submit_annotation(task=task, annotator=user, choice_id=choices[task.pk % 3], duration_ms=5)
                except Conflict:
                    pass  # the other tab answered first, or the task closed: ask again
        except BaseException as exc:  # report it in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(annotators[i % 25],)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    live = Annotation.objects.live()
    assert live.count() == 2 * tasks
    pairs = list(live.values_list("task_id", "annotator_id"))
    assert len(set(pairs)) == len(pairs)
    assert set(Task.objects.values_list("status", flat=True)) == {TaskStatus.COMPLETED}
    assert all(t.annotation_count == 2 for t in Task.objects.all())


def test_the_hand_built_leased_task_matches_the_declared_serializer(project, bob, make_batch, rf):
    """LeasedTaskSerializer builds its output by hand for speed; the declared fields must say the same."""
    from rest_framework import serializers
    from rest_framework.request import Request

    from labeling.api import LeasedTaskSerializer

    make_batch(project, 1)
    task = leasing.lease_next_task(project=project, annotator=bob)
    task.metadata = {"camera": "x", "n": [1, 2]}
    serializer = LeasedTaskSerializer(task, context={"request": Request(rf.get("/", HTTP_HOST="127.0.0.1"))})
    assert serializer.to_representation(task) == dict(serializers.ModelSerializer.to_representation(serializer, task))
    assert serializer.data["asset"]["image_url"].startswith("http://127.0.0.1/media/")


def test_answering_a_task_that_does_not_exist_or_was_deleted_is_404(project, bob, client_for, make_batch):
    make_batch(project, 1)
    client = client_for(bob)
    task_id = next_task(client, project).data["id"]
    Task.objects.filter(pk=task_id).update(deleted_at=timezone.now())
    assert answer(client, task_id, choice(project).pk).status_code == 404
    assert answer(client, task_id + 10_000, choice(project).pk).status_code == 404
    assert not Annotation.objects.exists()


def test_answering_a_task_id_that_is_not_a_number_is_404(project, bob, client_for):
    response = client_for(bob).post("/api/v1/tasks/abc/annotations/", {"choice": choice(project).pk, "duration_ms": 5},
                                    format="json")
    assert response.status_code == 404
    assert not Annotation.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_answer", [True, False])
def test_two_submits_waiting_on_one_task_lock_store_one_answer(project, bob, make_batch, same_answer):
    """Two tabs send an answer while a third transaction holds the task's row lock: the one that gets the
    lock second must see the first one's committed answer (read after the lock), not insert a second."""
    make_batch(project, 1)
    task = leasing.lease_next_task(project=project, annotator=bob)
    first, second = list(project.choices.values_list("id", flat=True))[:2]
    outcomes: list[str] = []
    start = threading.Barrier(3)

    def submit(choice_id: int) -> None:
        try:
            start.wait()
            _, created = answers.submit_annotation(task=task.pk, annotator=bob, choice_id=choice_id, duration_ms=5)
            outcomes.append("created" if created else "duplicate")
        except Conflict as exc:
            outcomes.append(exc.code)
        except BaseException as exc:  # report it in the main thread
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(c,)) for c in (first, first if same_answer else second)]
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=task.pk)  # both submits queue behind this lock
        for thread in threads:
            thread.start()
        start.wait()
        time.sleep(0.3)
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == (["created", "duplicate"] if same_answer else ["already_answered", "created"])
    assert Annotation.objects.filter(task=task).count() == 1
    assert Task.objects.get(pk=task.pk).annotation_count == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lease_order", ["upload", "uncertainty"])
def test_a_task_a_row_referencing_it_is_being_written_for_is_still_leased(project, bob, make_batch, lease_order):
    """Inserting any row that points at a task (an answer, a lease, a suggestion) makes PostgreSQL's foreign-key
    check take FOR KEY SHARE on the task until that transaction ends (at its commit, as Django's constraints are
    deferred). The lease must not mistake that for another annotator's lease and skip the task; a rival lease's
    own row lock still makes it skip."""
    project.lease_order = lease_order
    project.save(update_fields=["lease_order"])
    make_batch(project, 4)
    first, second, *_ = project.tasks.order_by("created_at", "id").values_list("id", flat=True)

    # What the foreign-key check of a row being written for the first task holds.
    leased = lease_while_locked(project, bob, first, "KEY SHARE")
    assert len(leased) == 4 and first in leased
    Lease.objects.all().delete()

    # Another lease in progress on the second task (its row lock): skipped, as before.
    leased = lease_while_locked(project, bob, second, "NO KEY UPDATE")
    assert len(leased) == 3 and second not in leased


def lease_while_locked(project, annotator, task_id: int, lock: str) -> list[int]:
    """The ids a lease of up to 4 tasks for `annotator` returns while another connection holds `FOR {lock}` on a task."""
    held, release = threading.Event(), threading.Event()
    errors: list[str] = []

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM labeling_task WHERE id = %s FOR {lock}", [task_id])  # noqa: S608
                held.set()
                release.wait(30)
        except BaseException as exc:  # report it in the main thread
            errors.append(repr(exc))
            held.set()
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(30)
    try:
        leased = [t.id for t in leasing.lease_tasks(project=project, annotator=annotator, count=4)]
    finally:
        release.set()
        thread.join(30)
    assert not errors, errors
    return leased


def test_next_task_for_a_missing_deleted_or_malformed_project_is_404(project, bob, client_for):
    client = client_for(bob)
    assert client.post(f"/api/v1/projects/{project.pk + 1000}/next-task/").status_code == 404
    assert client.post("/api/v1/projects/x1/next-task/").status_code == 404
    assert client.post("/api/v1/projects/\u00b2/next-task/").status_code == 404
    project.deleted_at = timezone.now()
    project.save()
    assert next_task(client, project).status_code == 404
    assert not Lease.objects.exists()


def test_a_leased_task_carries_its_stored_metadata_and_image(project, bob, client_for, make_batch):
    make_batch(project, 1)
    stored = {"camera": "x", "tags": ["a", "ü"], "n": 1.5, "nested": {"ok": True, "none": None}}
    Task.objects.update(metadata=stored, unique_id="img-1")
    body = next_task(client_for(bob), project).data
    task = Task.objects.select_related("asset").get()
    assert body["metadata"] == stored and body["unique_id"] == "img-1" and body["batch"] == task.batch_id
    assert body["asset"]["sha256"] == task.asset.sha256 and body["asset"]["width"] == task.asset.width
    assert body["asset"]["image_url"].endswith(task.asset.file.name)
    assert body["asset"]["thumbnail_url"].endswith(task.asset.thumbnail.name)


def test_ids_too_large_for_the_database_are_404_and_400_not_errors(project, bob, client_for, make_batch):
    make_batch(project, 1)
    client = client_for(bob)
    huge = 10**20  # over a bigint: the database would refuse the statement
    assert client.post(f"/api/v1/projects/{huge}/next-task/").status_code == 404
    task_id = next_task(client, project).data["id"]
    assert answer(client, huge, choice(project).pk).status_code == 404
    refused = answer(client, task_id, huge)
    assert refused.status_code == 400 and refused.data["code"] == "bad_choice"
    bulk = client.post(f"/api/v1/projects/{project.pk}/annotations/bulk/",
                       {"answers": [{"task": task_id, "choice": huge}]}, format="json")
    assert bulk.status_code == 200 and bulk.data["results"][0]["code"] == "bad_choice"
    assert not Annotation.objects.exists()


def test_the_lease_statement_looks_tasks_up_by_key_whatever_the_table_statistics(project, make_batch, bob):
    """Right after a bulk import the planner has no fresh statistics; the lease must not scan every task."""

    batch = make_batch(project, 3)
    template = batch.tasks.first()
    columns = [f.column for f in Task._meta.concrete_fields if f.column not in ("id", "unique_id")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT prorows FROM pg_proc WHERE proname = 'winnow_lease_tasks'")
        assert cursor.fetchone()[0] == 10
        # A bulk import of 40,000 tasks, not analysed: a 1,000-row estimate chose a merge or hash join over them.
        cursor.execute(f"INSERT INTO labeling_task ({', '.join(columns)}) "  # noqa: S608 (model columns)
                       f"SELECT {', '.join('t.' + c for c in columns)} FROM labeling_task t, generate_series(1, 40000) "
                       "WHERE t.id = %s", [template.pk])
        now = timezone.now()
        cursor.execute("EXPLAIN " + hotpath.LEASE_CALL,
                       [project.pk, bob.pk, 1, 1, ["finalized", "labeling"], now, now, now])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using labeling_task_pkey" in plan, plan
    assert "Seq Scan on labeling_task" not in plan and "Merge Join" not in plan and "Hash Join" not in plan, plan
