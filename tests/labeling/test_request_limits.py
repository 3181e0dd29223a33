"""Bad input that would cost the server: JSON bodies over their size limit (413), JSON nested too deeply (400,
not a RecursionError), and free text over its length — each refused with what to change, nothing stored."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Batch, Choice, Project, Task
from tests.conftest import CHOICES
from winnow import parsers

pytestmark = pytest.mark.django_db


def scale(user: Any) -> APIClient:
    client = APIClient()
    key = Token.objects.get_or_create(user=user)[0].key
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode())
    return client


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def post_raw(client: APIClient, path: str, body: str) -> Any:
    return client.generic("POST", path, body.encode(), content_type="application/json")


# --- size ---------------------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_413_and_stores_nothing(alice: Any, client_for: Callable[..., APIClient],
                                                              settings: Any) -> None:
    settings.API_MAX_JSON_BYTES = 2048
    body = {"name": "big", "instructions": "x" * 3000, "choices": CHOICES}

    response = client_for(alice).post("/api/v1/projects/", body, format="json")

    assert response.status_code == 413
    assert "over the limit of" in response.data["detail"] and "API_MAX_JSON_BYTES" in response.data["detail"]
    assert not Project.objects.exists()


def test_a_body_without_a_declared_length_is_cut_at_the_limit(settings: Any) -> None:
    settings.API_MAX_JSON_BYTES = 1024

    with pytest.raises(parsers.PayloadTooLarge, match="larger than that"):
        parsers.JSONParser().parse(io.BytesIO(json.dumps({"a": "x" * 5000}).encode()), "application/json", {})
    assert parsers.JSONParser().parse(io.BytesIO(b'{"a": 1}'), "application/json", {}) == {"a": 1}


def test_url_uploads_have_their_own_larger_limit(project: Project, alice: Any, client_for: Callable[..., APIClient],
                                                 make_batch: Callable[..., Batch], settings: Any) -> None:
    settings.API_MAX_JSON_BYTES = 2048
    settings.INGEST_MAX_JSON_BYTES = 20_000
    batch = make_batch(project, 0, finalize=False)
    tasks = [{"image_url": f"https://example.org/{i}.png", "unique_id": f"u{i}"} for i in range(100)]  # ~6 kB
    client = client_for(alice)

    accepted = client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": tasks}, format="json")
    refused = client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": tasks * 5}, format="json")

    assert accepted.status_code == 201
    assert refused.status_code == 413
    assert "INGEST_MAX_JSON_BYTES" in refused.data["detail"] and "several requests" in refused.data["detail"]
    assert Task.objects.filter(batch=batch).count() == 100


def test_the_scale_api_answers_413_with_an_error_object(alice: Any, settings: Any) -> None:
    settings.API_MAX_JSON_BYTES = 2048

    response = scale(alice).post("/v1/projects", {"type": "categorization", "name": "x" * 3000}, format="json")

    assert response.status_code == 413
    assert "API_MAX_JSON_BYTES" in response.json()["error"]


# --- depth --------------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_on_the_anonymous_token_endpoint() -> None:
    response = post_raw(APIClient(), "/api/v1/auth/token/", nested(1000))

    assert response.status_code == 400
    assert "nested more than 64 levels" in response.data["detail"]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_a_400_everywhere(project: Project, alice: Any, client_for: Callable[..., APIClient],
                                                make_batch: Callable[..., Batch], depth: int) -> None:
    batch = make_batch(project, 0, finalize=False)
    client = client_for(alice)

    for path in ("/api/v1/projects/", f"/api/v1/batches/{batch.pk}/tasks/", f"/api/v1/projects/{project.pk}/next-tasks/"):
        response = post_raw(client, path, nested(depth))
        assert response.status_code == 400, path
        assert "flatten" in response.data["detail"]
    via_scale = post_raw(scale(alice), "/v1/projects", nested(depth))
    assert via_scale.status_code == 400
    assert "nested more than" in via_scale.json()["error"]
    assert Project.objects.count() == 1


def test_metadata_nested_past_the_limit_is_refused_and_shallow_metadata_kept(
    project: Project, alice: Any, client_for: Callable[..., APIClient], make_batch: Callable[..., Batch]
) -> None:
    batch = make_batch(project, 0, finalize=False)
    deep: Any = {}
    for _ in range(70):
        deep = {"k": deep}
    client = client_for(alice)

    refused = client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": [
        {"image_url": "https://example.org/a.png", "metadata": deep}]}, format="json")
    kept = client.post(f"/api/v1/batches/{batch.pk}/tasks/", {"tasks": [
        {"image_url": "https://example.org/b.png", "metadata": {"a": {"b": {"c": [1, [2, [3]]]}}}}]}, format="json")

    assert refused.status_code == 400
    assert kept.status_code == 201
    assert Task.objects.get(batch=batch).metadata == {"a": {"b": {"c": [1, [2, [3]]]}}}


def test_nan_is_not_json(alice: Any, client_for: Callable[..., APIClient]) -> None:
    response = post_raw(client_for(alice), "/api/v1/projects/", '{"name": "n", "gold_rate": NaN}')

    assert response.status_code == 400
    assert "NaN is not valid JSON" in response.data["detail"]


# --- free text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"instructions": "x" * 50_001}, "instructions"),
        ({"name": "x" * 201}, "name"),
        ({"question": "x" * 501}, "question"),
        ({"choices": [{**CHOICES[0], "long_hint": "x" * 5_001}, CHOICES[1]]}, "choices"),
        ({"choices": [{**CHOICES[0], "label": "x" * 101}, CHOICES[1]]}, "choices"),
        ({"choices": [{**CHOICES[0], "description": "x" * 301}, CHOICES[1]]}, "choices"),
    ],
)
def test_free_text_over_its_length_is_refused_naming_the_field(alice: Any, client_for: Callable[..., APIClient],
                                                               change: dict[str, Any], field: str) -> None:
    body = {"name": "p", "instructions": "…", "choices": CHOICES, **change}

    response = client_for(alice).post("/api/v1/projects/", body, format="json")

    assert response.status_code == 400
    assert field in response.data["fields"]
    assert "no more than" in json.dumps(response.data)
    assert not Project.objects.exists()


def test_free_text_at_its_length_is_kept(alice: Any, client_for: Callable[..., APIClient]) -> None:
    body = {"name": "x" * 200, "instructions": "x" * 50_000,
            "choices": [{**CHOICES[0], "long_hint": "h" * 5_000}, CHOICES[1]]}

    response = client_for(alice).post("/api/v1/projects/", body, format="json")

    assert response.status_code == 201
    assert len(Project.objects.get().instructions) == 50_000
    assert len(Choice.objects.get(label=CHOICES[0]["label"]).long_hint) == 5_000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"instruction": "x" * 50_001, "categories": ["a", "b"]}, "over the limit of 50,000"),
        ({"categories": [{"label": "a", "long_hint": "x" * 5_001}, "b"]}, "at most 5,000 characters"),
        ({"categories": [{"label": "a", "description": "x" * 301}, "b"]}, "at most 300 characters"),
        ({"taxonomies": {"k": {"type": "category", "description": "x" * 501, "choices": ["a", "b"]}}}, "at most 500"),
    ],
)
def test_the_scale_api_refuses_long_text_instead_of_cutting_it(alice: Any, params: dict[str, Any], message: str) -> None:
    response = scale(alice).post("/v1/projects", {"type": "categorization", "name": "p", "params": params},
                                 format="json")

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Project.objects.exists()


def test_the_scale_api_refuses_long_instructions_in_set_params(alice: Any) -> None:
    client = scale(alice)
    assert client.post("/v1/projects", {"type": "categorization", "name": "p", "params": {"categories": ["a", "b"]}},
                       format="json").status_code == 200

    response = client.post("/v1/projects/p/setParams", {"instruction": "x" * 50_001}, format="json")

    assert response.status_code == 400
    assert Project.objects.get().instructions == ""
