from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from common.app import create_service_app
from common.errors import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA_REF,
    Conflict,
    Unauthorized,
    ValidationFailed,
)
from common.settings import ServiceSettings
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field, ValidationError


class Thing(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    count: int


def build_app(settings: ServiceSettings | None = None) -> FastAPI:
    router = APIRouter(prefix="/things")

    @router.patch("/{name}")
    async def rename_thing(name: str) -> None:
        return None

    app = create_service_app("sample", settings or ServiceSettings(), routers=[router])

    @app.post("/things")
    async def create_thing(thing: Thing) -> Thing:
        if thing.name == "taken":
            raise Conflict("That name is taken.")
        return thing

    @app.get("/things")
    async def list_things() -> list[Thing]:
        return []

    @app.get("/secret")
    async def secret() -> None:
        raise Unauthorized("A bearer token is required.")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    assert {"type", "title"} <= set(body)
    return body


async def test_app_error_renders_as_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/things", json={"name": "taken", "count": 1}), 409)
    assert body["detail"] == "That name is taken."
    assert body["instance"] == "/things"


async def test_unauthorized_carries_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/secret")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "", "count": 1}, {"name"}),
        ({"name": "toolong", "count": "x"}, {"name", "count"}),
        ({}, {"name", "count"}),
        ({"name": "ok", "count": [1]}, {"count"}),
    ],
)
async def test_invalid_fields_are_named(
    client: httpx.AsyncClient, body: dict[str, object], fields: set[str]
) -> None:
    problem = assert_problem(await client.post("/things", json=body), 422)
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert {e["field"] for e in errors} == fields
    assert all(e["message"] for e in errors)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\x00\xff", b"[1, 2]", b"null"])
async def test_bad_bodies_are_422(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/things", content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


async def test_a_json_body_that_is_not_utf8_is_a_422_naming_the_body(
    client: httpx.AsyncClient,
) -> None:
    # Found by schemathesis: FastAPI answered it 400 "There was an error parsing the body".
    response = await client.post(
        "/things", content=b"\x04\xc6\x98\xff\xfe", headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"] == [{"field": "body", "message": "The body cannot be parsed."}]


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404)


async def test_method_not_allowed_is_problem_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things")
    assert_problem(response, 405)
    # Every method of the path, not only those of the first route that has it (GET and POST
    # are two routes).
    assert response.headers["allow"] == "GET, OPTIONS, POST"


async def test_405_lists_the_methods_of_included_routers(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things/box")
    assert_problem(response, 405)
    assert response.headers["allow"] == "OPTIONS, PATCH"


async def test_options_answers_which_methods_the_path_has(client: httpx.AsyncClient) -> None:
    response = await client.options("/things")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, POST"


def test_the_document_declares_problem_json_for_validation_errors() -> None:
    document = build_app().openapi()
    invalid = document["paths"]["/things"]["post"]["responses"]["422"]
    assert invalid["content"] == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ProblemDetails"]["required"] == ["title", "status"]
    assert set(schemas["ProblemDetails"]["properties"]) >= {"type", "title", "status", "errors"}


async def test_unexpected_error_reveals_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "detail" not in body


class Nested(BaseModel):
    inner: Thing


def test_a_model_validated_by_hand_names_each_field_by_its_path_and_never_its_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Nested.model_validate({"inner": {"name": "hunter2", "count": 1}})
    failed = ValidationFailed.of(caught.value)
    assert failed.status == 422
    assert failed.errors is not None
    assert [error["field"] for error in failed.errors] == ["inner.name"]
    assert "hunter2" not in str(failed.errors)
    with pytest.raises(ValidationError) as whole:
        Nested.model_validate("not an object")
    assert [error["field"] for error in ValidationFailed.of(whole.value).errors or []] == ["body"]
