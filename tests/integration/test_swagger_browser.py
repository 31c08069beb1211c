"""Swagger UI through the gateway, in a real headless Chromium: log in with Authorize, call
`GET /api/v1/users/me`, see 200."""

from __future__ import annotations

import uuid

import httpx
from common.testing import read_me_in_swagger_ui

from .platform import Platform
from .support import BROWSER_MARKS

pytestmark = BROWSER_MARKS


async def test_authorize_then_call_me_in_swagger_ui(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    password = "browser passphrase 2026"
    account = {
        "email": f"swagger.{tag}@example.org",
        "username": f"swagger_{tag}",
        "password": password,
        "full_name": "Swagger User",
    }
    assert (await gateway.post("/api/v1/users/", json=account)).status_code == 201

    docs = platform.url("gateway") + "/api/docs"
    body, _seen = await read_me_in_swagger_ui(docs, account["username"], password)
    assert account["username"] in body
