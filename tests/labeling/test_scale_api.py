"""The Scale-compatible API at the wire: auth, status codes, error bodies, names, paging, filters, audits."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import quality
from labeling.models import Audit, AuditVerdict, Batch, BatchKind, Project, Task, TaskStatus
from tests.labeling.test_webhooks import answer_all

pytestmark = pytest.mark.django_db


def basic(user: Any) -> APIClient:
    """A client that authenticates as Scale's client does: the key as the basic-auth username."""
    key = Token.objects.get_or_create(user=user)[0].key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode())
    return client


@pytest.fixture
def v1(alice: Any) -> APIClient:
    return basic(alice)


def test_a_bad_or_missing_key_is_401_with_an_error_object(project: Project, alice: Any) -> None:
    anonymous = APIClient().get("/v1/projects")
    assert anonymous.status_code == 401
    assert "error" in anonymous.json()
    assert anonymous["WWW-Authenticate"] == 'Basic realm="Winnow"'
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"nope:").decode())
    assert wrong.get("/v1/projects").status_code == 401
    assert "invalid API key" in wrong.get("/v1/projects").json()["error"]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION="Bearer " + Token.objects.get_or_create(user=alice)[0].key)
    assert bearer.get("/v1/projects").status_code == 200


def test_routes_have_no_trailing_slash_but_accept_one(v1: APIClient, project: Project) -> None:
    assert v1.get("/v1/projects").status_code == 200
    assert v1.get("/v1/projects/").status_code == 200
    assert v1.get("/v1/tasks").status_code == 200


def test_unsupported_routes_answer_404_with_an_error_object(v1: APIClient) -> None:
    response = v1.get("/v1/teams")

    assert response.status_code == 404
    assert "not part of Winnow's Scale-compatible API" in response.json()["error"]
    assert v1.post("/v1/files/upload").status_code == 404
    assert v1.get("/v1/task/abc").status_code == 404


def test_winnow_projects_answer_in_scales_shape(v1: APIClient, project: Project) -> None:
    response = v1.get(f"/v1/projects/{project.name}")

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["type"], body["id"]) == (project.name, "categorization", project.pk)
    [params] = body["param_history"]
    assert params["categories"] == ["Photorealistic", "Anime", "Neither"]
    assert params["taxonomies"] == {"category": {"type": "category", "description": project.question,
                                                 "choices": ["Photorealistic", "Anime", "Neither"]}}
    assert params["instruction"] == project.instructions


def test_names_with_slashes_arrive_percent_encoded(v1: APIClient, project: Project,
                                                   make_batch: Callable[..., Batch]) -> None:
    make_batch(project, n=2, name="week 1/day 2", finalize=False)
    make_batch(project, n=1, name="odd/status", finalize=False, seed=10)

    assert v1.get("/v1/batches/week%201%2Fday%202").json()["name"] == "week 1/day 2"
    assert v1.get("/v1/batches/week%201%2Fday%202/status").json() == {
        "status": "staging", "pending": 2, "completed": 0, "error": 0, "canceled": 0}
    # A batch whose name ends like a route still resolves.
    assert v1.get("/v1/batches/odd%2Fstatus").json()["name"] == "odd/status"


def test_task_pages_never_say_has_more_without_a_next_token(v1: APIClient, project: Project,
                                                            make_batch: Callable[..., Batch]) -> None:
    make_batch(project, n=5, name="five")
    seen: list[str] = []
    pages = []
    token = None
    while True:
        params = {"project": project.name, "limit": 2, **({"next_token": token} if token else {})}
        page = v1.get("/v1/tasks", params).json()
        pages.append((len(page["docs"]), page["has_more"], page["offset"], page["total"]))
        assert page["has_more"] == (page["next_token"] is not None)
        seen += [d["task_id"] for d in page["docs"]]
        token = page["next_token"]
        if not page["has_more"]:
            break

    assert pages == [(2, True, 0, 5), (2, True, 2, 5), (1, False, 4, 5)]
    assert seen == [str(pk) for pk in Task.objects.order_by("id").values_list("id", flat=True)]


def test_query_booleans_arrive_as_python_spells_them(v1: APIClient, project: Project,
                                                     make_batch: Callable[..., Batch]) -> None:
    make_batch(project, n=1)

    limited = v1.get("/v1/tasks", {"project": project.name, "include_attachment_url": "True",
                                   "limited_response": "True"}).json()["docs"][0]
    full = v1.get("/v1/tasks", {"project": project.name, "limited_response": "False"}).json()["docs"][0]

    assert sorted(limited) == ["batch", "metadata", "project", "status", "task_id"]
    assert full["params"]["attachment"].startswith("http://testserver/media/assets/")
    refused = v1.get("/v1/tasks", {"limited_response": "maybe"})
    assert refused.status_code == 400
    assert "true or false" in refused.json()["error"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"limit": "0"}, "limit must be from 1 to 100"),
        ({"limit": "101"}, "limit must be from 1 to 100"),
        ({"start_time": "yesterday"}, "start_time must be a UTC time"),
        ({"customer_review_status": "loved"}, "customer_review_status"),
    ],
)
def test_bad_task_filters_are_400_with_the_reason(v1: APIClient, params: dict[str, str], message: str) -> None:
    response = v1.get("/v1/tasks", params)

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_task_filters_narrow_the_list(v1: APIClient, project: Project, make_batch: Callable[..., Batch],
                                      bob: Any) -> None:
    make_batch(project, n=2, name="first")
    make_batch(project, n=1, name="second", seed=20)
    answer_all(project, bob)
    make_batch(project, n=1, name="third", seed=30)

    def ids(**params: str) -> int:
        return v1.get("/v1/tasks", params).json()["total"]

    assert ids(project=project.name) == 4
    assert ids(batch="first") == 2
    assert ids(status="completed") == 3
    assert ids(status="pending") == 1
    assert ids(type="imageannotation") == 0
    assert ids(start_time="2999-01-01") == 0
    assert ids(end_time="2999-01-01 00:00:00.000000") == 4
    assert ids(completed_after="2000-01-01T00:00:00Z") == 3
    assert ids(updated_before="2000-01-01") == 0


def test_batches_list_in_scales_paged_shape(v1: APIClient, project: Project, make_batch: Callable[..., Batch]) -> None:
    make_batch(project, n=1, name="a")
    make_batch(project, n=1, name="b", finalize=False, seed=5)
    make_batch(project, n=1, name="c", finalize=False, seed=6)

    first = v1.get("/v1/batches", {"project": project.name, "limit": 2, "offset": 0, "exclude_archived": "False"}).json()
    rest = v1.get("/v1/batches", {"project": project.name, "limit": 2, "offset": 2}).json()
    staging = v1.get("/v1/batches", {"status": "staging"}).json()

    assert ([b["name"] for b in first["docs"]], first["totalDocs"], first["has_more"]) == (["a", "b"], 3, True)
    assert ([b["name"] for b in rest["docs"]], rest["has_more"]) == (["c"], False)
    assert [b["name"] for b in staging["docs"]] == ["b", "c"]
    assert v1.get("/v1/batches", {"status": "archived"}).status_code == 400


def test_set_params_adds_a_version_and_keeps_existing_answers(v1: APIClient, project: Project) -> None:
    before = dict(project.choices.values_list("label", "id"))

    response = v1.post(f"/v1/projects/{project.name}/setParams",
                       {"instruction": "New words", "categories": ["Photorealistic", "Anime", "Neither", "Sketch"]},
                       format="json")

    assert response.status_code == 200
    history = response.json()["param_history"]
    assert [h["version"] for h in history] == [0, 1]
    assert history[-1]["categories"] == ["Photorealistic", "Anime", "Neither", "Sketch"]
    project.refresh_from_db()
    assert project.instructions == "New words"
    after = dict(project.choices.values_list("label", "id"))
    assert {k: after[k] for k in before} == before  # same rows, so earlier answers still point at them
    assert project.choices.get(label="Sketch").hotkey not in {"1", "2", "3"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"attachment": "https://example.com/a.png", "attachment_type": "video"}, "attachment_type"),
        ({"attachment": "file:///etc/passwd"}, "must start with http"),
        ({}, "attachment is required"),
        ({"attachment": "https://example.com/a.png", "metadata": ["x"]}, "metadata must be a JSON object"),
        ({"attachment": "https://example.com/a.png", "callback_url": "http://10.0.0.5/cb"}, "internal address"),
        ({"attachment": "https://example.com/a.png", "callback_url": "ops@example.com"}, "not e-mail"),
        ({"attachment": "https://example.com/a.png", "categories": ["cat", "dog"]}, "project's categories"),
        ({"attachment": "https://example.com/a.png", "unique_id": ""}, "unique_id must be a string"),
    ],
)
def test_bad_tasks_are_refused_and_nothing_is_stored(v1: APIClient, project: Project, make_batch: Callable[..., Batch],
                                                     body: dict[str, Any], message: str) -> None:
    make_batch(project, n=0, name="open", finalize=False)

    response = v1.post("/v1/task/categorization", {"batch": "open", **body}, format="json")

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Task.objects.count() == 0


def test_a_task_from_a_url_is_an_ordinary_pending_winnow_task(v1: APIClient, project: Project,
                                                              make_batch: Callable[..., Batch]) -> None:
    batch = make_batch(project, n=0, name="open", finalize=False)

    response = v1.post("/v1/task/categorization", {
        "project": project.name, "batch": "open", "attachment": "https://images.example.com/1.jpg",
        "unique_id": "u-1", "metadata": {"source": "crawl"}, "instruction": "ignored: the project's instructions apply",
    }, format="json")

    assert response.status_code == 200
    task = Task.objects.get()
    assert (task.batch_id, task.status, task.unique_id, task.metadata) == (batch.pk, TaskStatus.PENDING, "u-1",
                                                                           {"source": "crawl"})
    assert task.source_url == "https://images.example.com/1.jpg"
    assert response.json()["task_id"] == str(task.pk)
    again = v1.post("/v1/task/categorization", {"batch": "open", "attachment": "https://x.example/2.jpg",
                                               "unique_id": "u-1"}, format="json")
    assert again.status_code == 409
    assert Task.objects.count() == 1


def test_unique_id_and_metadata_can_be_changed(v1: APIClient, project: Project, make_batch: Callable[..., Batch]) -> None:
    make_batch(project, n=2)
    first, second = Task.objects.order_by("id")

    assert v1.post(f"/v1/task/{first.pk}/unique_id", {"unique_id": "a"}, format="json").json()["unique_id"] == "a"
    assert v1.post(f"/v1/task/{second.pk}/unique_id", {"unique_id": "a"}, format="json").status_code == 409
    assert v1.delete(f"/v1/task/{first.pk}/unique_id").json()["unique_id"] is None
    assert v1.post(f"/v1/task/{second.pk}/setMetadata", {"k": 1}, format="json").json()["metadata"] == {"k": 1}
    assert v1.post(f"/v1/task/{second.pk}/tags", ["x"], format="json").status_code == 400
    assert Task.objects.get(pk=second.pk).metadata == {"k": 1}
    assert v1.post(f"/v1/batches/{Batch.objects.get().name}/setMetadata", {"owner": "ml"},
                   format="json").json()["metadata"] == {"owner": "ml"}


def test_a_body_that_is_not_an_object_is_400(v1: APIClient, project: Project) -> None:
    response = v1.post("/v1/batches", ["not", "an", "object"], format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "the request body must be a JSON object"


def test_production_before_calibration_approval_is_400_saying_so(v1: APIClient, project: Project) -> None:
    response = v1.post("/v1/batches", {"project": project.name, "name": "prod"}, format="json")

    assert response.status_code == 400
    assert "calibration is approved" in response.json()["error"]
    assert Batch.objects.count() == 0


def test_sampled_production_tasks_are_audited_through_v1(project: Project, make_batch: Callable[..., Batch],
                                                         bob: Any, carol: Any) -> None:
    batch = make_batch(project, n=3, kind=BatchKind.PRODUCTION)
    answer_all(project, bob, label="Anime")
    quality.draw_audit_sample(batch=Batch.objects.get(pk=batch.pk), size=3, seed=1)
    first, second, third = Task.objects.filter(batch=batch).order_by("id")
    reviewer = basic(carol)
    assert reviewer.get(f"/v1/task/{first.pk}").json()["customer_review_status"] == "pending"

    accepted = reviewer.post(f"/v1/task/{first.pk}/audit", {"accepted": True, "comments": "fine"}, format="json")
    fixed = reviewer.post(f"/v1/task/{second.pk}/audit", {"accepted": False, "category": "Photorealistic"}, format="json")

    assert accepted.status_code == 200
    assert accepted.json()["customer_review_status"] == "accepted"
    assert fixed.json()["customer_review_status"] == "fixed"
    assert fixed.json()["response"]["category"] == "Photorealistic"
    assert dict(Audit.objects.values_list("task_id", "verdict")) == {
        first.pk: AuditVerdict.CORRECT, second.pk: AuditVerdict.INCORRECT, third.pk: AuditVerdict.PENDING}
    again = reviewer.post(f"/v1/task/{first.pk}/audit", {"accepted": True}, format="json")
    assert again.status_code == 400  # already audited: "already done" is a 400, never a 409
    own = basic(bob).post(f"/v1/task/{third.pk}/audit", {"accepted": True}, format="json")
    assert own.status_code == 403
    listed = reviewer.get("/v1/tasks", {"customer_review_status": "accepted,fixed"}).json()
    assert sorted(d["task_id"] for d in listed["docs"]) == sorted([str(first.pk), str(second.pk)])


def test_unsampled_production_tasks_point_to_the_batch_audit(v1: APIClient, project: Project,
                                                             make_batch: Callable[..., Batch], bob: Any) -> None:
    batch = make_batch(project, n=1, kind=BatchKind.PRODUCTION)
    answer_all(project, bob)
    task = Task.objects.get(batch=batch)

    response = v1.post(f"/v1/task/{task.pk}/audit", {"accepted": True}, format="json")

    assert response.status_code == 400
    assert f"/api/v1/batches/{batch.pk}/audit/" in response.json()["error"]
    assert Audit.objects.count() == 0


def test_finalize_is_for_owners_and_refuses_an_empty_batch(project: Project, make_batch: Callable[..., Batch],
                                                           bob: Any, v1: APIClient) -> None:
    make_batch(project, n=0, name="empty", finalize=False)

    assert basic(bob).post("/v1/batches/empty/finalize").status_code == 403
    response = v1.post("/v1/batches/empty/finalize")
    assert response.status_code == 400
    assert "no tasks" in response.json()["error"]
    assert Batch.objects.get(name="empty").status == "open"
