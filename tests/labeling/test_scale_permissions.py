"""Who may call each route of the Scale-compatible API: the native API's rules, route by route and role by role.

Owners and reviewers read tasks; annotators see tasks only by leasing them (a listing or a task's details
would show gold copies and other people's answers); a non-member gets 404, as for something that does
not exist; only owners change anything. A refused request changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import projects, quality
from labeling.models import Audit, Batch, BatchKind, Project, Task
from tests.labeling.test_webhooks import answer_all

pytestmark = pytest.mark.django_db

ROLES = ("owner", "reviewer", "annotator", "stranger")


def basic(user: Any) -> APIClient:
    key = Token.objects.get_or_create(user=user)[0].key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode())
    return client


@pytest.fixture
def world(project: Project, make_batch: Callable[..., Batch], alice: Any, bob: Any, carol: Any,
          mallory: Any) -> dict[str, Any]:
    """A reviewed calibration batch, a production batch with hidden gold copies, and an open batch."""
    cal = make_batch(project, n=2, name="cal")
    answer_all(project, bob)
    for task in Task.objects.filter(batch=cal):
        quality.set_gold(task=task, choice_id=project.choices.get(label="Anime").pk)
    projects.approve_calibration(project=project)
    Project.objects.filter(pk=project.pk).update(gold_rate=0.5)
    project.refresh_from_db()
    prod = make_batch(project, n=4, kind=BatchKind.PRODUCTION, name="prod", seed=10)
    make_batch(project, n=1, name="open", finalize=False, seed=20)
    gold_copy = Task.objects.filter(batch=prod, is_gold=True).first()
    assert gold_copy is not None
    return {
        "project": project, "cal_task": Task.objects.filter(batch=cal).first(), "gold_copy": gold_copy,
        "prod_task": Task.objects.filter(batch=prod, is_gold=False).first(),
        "clients": {"owner": basic(alice), "reviewer": basic(carol), "annotator": basic(bob), "stranger": basic(mallory)},
    }


def state() -> list[Any]:
    """What a refused request must leave as it was."""
    return [
        list(Project.objects.values_list("name", "instructions", "scale_params").order_by("id")),
        list(Batch.objects.values_list("name", "status", "metadata").order_by("id")),
        list(Task.objects.values_list("id", "status", "unique_id", "metadata", "gold_choice_id").order_by("id")),
        Audit.objects.count(),
    ]


# (method, path, body, {role: status}); {p} is the project's name, {gold}, {cal} and {task} task ids.
OK_FOR_MEMBERS = {"owner": 200, "reviewer": 200, "annotator": 200, "stranger": 404}
OWNERS_ONLY = {"owner": 200, "reviewer": 403, "annotator": 403, "stranger": 404}
ROUTES = [
    ("GET", "/v1/projects", None, dict.fromkeys(ROLES, 200)),
    ("POST", "/v1/projects", {"type": "categorization", "name": "mine", "params": {"categories": ["a", "b"]}},
     dict.fromkeys(ROLES, 200)),  # anyone may start a project of their own
    ("GET", "/v1/projects/{p}", None, OK_FOR_MEMBERS),
    ("POST", "/v1/projects/{p}/setParams", {"instruction": "new words"}, OWNERS_ONLY),
    ("GET", "/v1/batches", None, dict.fromkeys(ROLES, 200)),
    ("POST", "/v1/batches", {"project": "{p}", "name": "new", "calibration_batch": True}, OWNERS_ONLY),
    ("GET", "/v1/batches/prod", None, OK_FOR_MEMBERS),
    ("POST", "/v1/batches/open/finalize", None, OWNERS_ONLY),
    ("GET", "/v1/batches/prod/status", None, OK_FOR_MEMBERS),
    ("POST", "/v1/batches/prod/setMetadata", {"k": "v"}, OWNERS_ONLY),
    ("GET", "/v1/tasks?project={p}", None, dict.fromkeys(ROLES, 200)),  # what each sees: the next tests
    ("GET", "/v1/task/{gold}", None, {"owner": 200, "reviewer": 200, "annotator": 403, "stranger": 404}),
    ("POST", "/v1/task/{task}/cancel", None, OWNERS_ONLY),
    ("POST", "/v1/task/{cal}/audit", {"accepted": True}, OWNERS_ONLY),  # a calibration answer: the owner's review
    ("POST", "/v1/task/{task}/unique_id", {"unique_id": "renamed"}, OWNERS_ONLY),
    ("DELETE", "/v1/task/{task}/unique_id", None, OWNERS_ONLY),
    ("POST", "/v1/task/{task}/setMetadata", {"k": "v"}, OWNERS_ONLY),
    ("GET", "/v1/task/{task}/tags", None, {"owner": 400, "reviewer": 400, "annotator": 403, "stranger": 404}),
    ("POST", "/v1/task/categorization", {"batch": "open", "attachment": "https://example.com/a.png"}, OWNERS_ONLY),
]


def _fill(text: str, world: dict[str, Any]) -> str:
    return text.format(p=world["project"].name, gold=world["gold_copy"].pk, cal=world["cal_task"].pk,
                       task=world["prod_task"].pk)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_each_route_answers_each_role_as_the_native_api_does(world: dict[str, Any], role: str, method: str,
                                                             path: str, body: dict[str, Any] | None,
                                                             expected: dict[str, int]) -> None:
    client = world["clients"][role]
    if body is not None:
        body = {k: _fill(v, world) if isinstance(v, str) else v for k, v in body.items()}
    before = state()

    response = getattr(client, method.lower())(_fill(path, world), body, format="json")

    assert response.status_code == expected[role], response.json()
    if response.status_code != 200:
        assert response.json()["error"]
        assert state() == before
    if response.status_code == 404:
        assert "visible to this API key" in response.json()["error"]  # the same words as for what does not exist


@pytest.mark.parametrize("role", ["annotator", "stranger"])
def test_annotators_and_strangers_list_no_tasks_and_no_answers(world: dict[str, Any], role: str,
                                                               client_for: Callable[[Any], APIClient], bob: Any) -> None:
    client = world["clients"][role]

    listing = client.get("/v1/tasks", {"project": world["project"].name})
    by_batch = client.get("/v1/tasks", {"batch": "cal"})

    assert listing.status_code == 200
    assert (listing.json()["total"], listing.json()["docs"]) == (0, [])
    assert (by_batch.json()["total"], by_batch.json()["docs"]) == (0, [])
    # The native API gives the annotator the same: nothing.
    assert client_for(bob).get("/api/v1/tasks/", {"project": world["project"].pk}).json()["results"] == []


@pytest.mark.parametrize("role", ["owner", "reviewer"])
def test_owners_and_reviewers_list_every_task_with_its_answer(world: dict[str, Any], role: str) -> None:
    response = world["clients"][role].get("/v1/tasks", {"project": world["project"].name})

    assert response.status_code == 200
    docs = response.json()["docs"]
    assert len(docs) == Task.objects.filter(project=world["project"]).count()
    assert any(d["winnow"]["is_gold"] for d in docs)
    assert {d["response"]["category"] for d in docs if d["batch"] == "cal"} == {"Anime"}


def test_an_annotator_is_told_to_lease_and_learns_nothing_of_the_task(world: dict[str, Any]) -> None:
    client = world["clients"]["annotator"]
    task = world["cal_task"]

    shown = client.get(f"/v1/task/{task.pk}")
    audited = client.post(f"/v1/task/{task.pk}/audit", {"accepted": False}, format="json")

    assert shown.status_code == 403
    assert "next-tasks" in shown.json()["error"]
    assert "response" not in shown.json()
    # Refused for the role before the body or the task's state is looked at.
    assert audited.status_code == 403
    assert "category" not in audited.json()["error"]
