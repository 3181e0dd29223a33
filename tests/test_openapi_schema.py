"""The OpenAPI schema says what the API answers (what schemathesis found wrong, held fixed; see docs/API.md)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def schema(alice: Any, client: Any) -> dict[str, Any]:
    client.force_login(alice)
    response = client.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def answer(schema: dict[str, Any], path: str, method: str, code: str = "200") -> dict[str, Any]:
    return schema["paths"][path][method]["responses"][code]["content"]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else node


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/projects/{id}/members/", "/api/v1/projects/{id}/batches/",
                                  "/api/v1/projects/{id}/splits/", "/api/v1/projects/{id}/audits/",
                                  "/api/v1/runs/{id}/metrics/"])
def test_lists_that_are_not_paginated_are_declared_as_arrays(schema: dict[str, Any], path: str) -> None:
    assert answer(schema, path, "get")["application/json"]["schema"]["type"] == "array"


@pytest.mark.django_db
def test_creating_answers_201_with_one_object(schema: dict[str, Any]) -> None:
    for path in ("/api/v1/projects/{id}/members/", "/api/v1/projects/{id}/batches/", "/api/v1/projects/{id}/splits/"):
        created = resolve(schema, answer(schema, path, "post", "201")["application/json"]["schema"])
        assert created["type"] == "object", path
    leased = resolve(schema, answer(schema, "/api/v1/projects/{id}/next-tasks/", "post")["application/json"]["schema"])
    assert leased["properties"]["tasks"]["type"] == "array"


@pytest.mark.django_db
def test_exports_are_declared_in_their_media_types(schema: dict[str, Any]) -> None:
    assert set(answer(schema, "/api/v1/projects/{id}/export/", "get")) == {
        "application/json", "application/x-ndjson", "text/csv", "application/zip"}
    assert "format" not in answer(schema, "/api/v1/projects/{id}/export/", "get")["application/json"]["schema"]
    assert set(answer(schema, "/api/v1/splits/{id}/export-cyclegan/", "get")) == {"application/zip"}


@pytest.mark.django_db
def test_empty_urls_and_an_undecided_task_fit_the_schema(schema: dict[str, Any]) -> None:
    task = schema["components"]["schemas"]["Task"]["properties"]
    assert {"type": "string", "maxLength": 0} in task["source_url"]["anyOf"]
    decided = task["decided_by"]
    enums = [resolve(schema, option).get("enum", []) for option in decided.get("oneOf", [decided])]
    assert "" in sum(enums, [])
    assert {"type": "string", "maxLength": 0} in schema["components"]["schemas"]["Batch"]["properties"]["callback_url"]["anyOf"]
    detail = schema["components"]["schemas"]["TaskDetail"]["properties"]
    assert detail["gold_choice"]["nullable"] and detail["gold_label"]["nullable"] and detail["answer"]["nullable"]


def test_the_quality_and_labeling_routes_declare_their_response_shapes():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]

    def ref(path, method, code="200"):
        return paths[path][method]["responses"][code]["content"]["application/json"]["schema"].get("$ref", "")

    assert ref("/api/v1/batches/{id}/quality/", "get").endswith("/BatchQuality")
    assert ref("/api/v1/projects/{id}/calibration/", "get").endswith("/CalibrationReport")
    assert ref("/api/v1/batches/{id}/audit/", "post", "201").endswith("/AuditDrawn")
    assert ref("/api/v1/projects/{id}/annotations/bulk/", "post").endswith("/BulkAnswerResult")
