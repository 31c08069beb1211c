"""The token and revocation endpoints as the API document declares them: form bodies whose bounds
are the ones the hand-written parser enforces (found by schemathesis: no body was declared, so a
generated client could not call them, and unbounded extra parameters reached 413s)."""

from __future__ import annotations

from typing import Any

import pytest
from auth.main import create_app
from auth.oauth.forms import FORM_TYPE, MAX_NAME_LENGTH, MAX_PARAMETER_LENGTH, MAX_PARAMETERS

from .support import AuthHarness, auth_settings


def form_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    schema: dict[str, Any] = body["content"][FORM_TYPE]["schema"]
    return schema


def test_token_and_revocation_declare_their_forms() -> None:
    document = create_app(auth_settings("sqlite+aiosqlite://")).openapi()
    grants = form_schema(document, "/api/v1/auth/token")["oneOf"]
    assert [g["properties"]["grant_type"]["const"] for g in grants] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
    ]
    revocation = form_schema(document, "/api/v1/auth/revoke")
    assert revocation["required"] == ["token"]
    assert revocation["maxProperties"] == MAX_PARAMETERS
    extra = {"type": "string", "maxLength": MAX_PARAMETER_LENGTH}
    assert revocation["additionalProperties"] == extra
    errors = document["paths"]["/api/v1/auth/token"]["post"]["responses"]["400"]
    assert "application/json" in errors["content"]  # RFC 6749 §5.2, not problem+json


@pytest.mark.parametrize(
    "data",
    [
        {"token": "x" * (MAX_PARAMETER_LENGTH + 1)},
        {"token": "x", **{f"p{i}": "x" for i in range(MAX_PARAMETERS)}},
        {"token": "x", "n" * (MAX_NAME_LENGTH + 1): "x"},
    ],
)
async def test_a_form_past_the_declared_bounds_is_invalid_request(
    auth: AuthHarness, data: dict[str, str]
) -> None:
    response = await auth.client.post("/api/v1/auth/revoke", data=data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "data",
    [
        {"username": "", "password": ""},
        {"username": "ada", "password": ""},
        {"username": "x" * 321, "password": "x"},
    ],
)
async def test_a_login_users_would_refuse_is_422_not_503(
    auth: AuthHarness, data: dict[str, str]
) -> None:
    # Found by schemathesis: an empty password went on to users, whose 422 came back as a 503.
    response = await auth.client.post("/api/v1/auth/login", data=data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_pages_posts_are_declared_with_their_answers(auth: AuthHarness) -> None:
    """Found by schemathesis: POST /authorize and POST /end-session answered 415 where the
    document said those paths serve GET only; a bad authorization request's 400 page was not
    declared either."""
    document = create_app(auth_settings("sqlite+aiosqlite://")).openapi()
    for path, required in (
        ("/api/v1/auth/authorize", ["username", "password", "csrf_token"]),
        ("/api/v1/auth/end-session", ["csrf_token"]),
    ):
        post = document["paths"][path]["post"]
        schema = post["requestBody"]["content"][FORM_TYPE]["schema"]
        assert schema["required"] == required
        assert schema["additionalProperties"] is False
        assert "text/html" in post["responses"]["400"]["content"]
        assert "text/html" in document["paths"][path]["get"]["responses"]["400"]["content"]
        # A post of the page without its CSRF cookie: an error page the document declares (400
        # at /authorize, which names no client; 403 at /end-session, which checks the form first).
        response = await auth.client.post(path, data={"csrf_token": "x"})
        assert response.status_code in (400, 403)
        assert str(response.status_code) in post["responses"]
        assert response.headers["content-type"].startswith("text/html")
