"""What the platform tests share: accounts made and logged in through the gateway."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from common.testing import SmtpSink

from .platform import Platform

PASSWORD = "correct horse battery staple 42"
# The platform's STEP_UP_MAX_AGE: short, so a test can outwait a login (test_step_up).
STEP_UP_MAX_AGE = 10


def new_account() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"ada.{tag}@example.org",
        "username": f"ada_{tag}",
        "password": PASSWORD,
        "full_name": "Ada Lovelace",
    }


async def register(gateway: httpx.AsyncClient, account: dict[str, str]) -> dict[str, Any]:
    response = await gateway.post("/api/v1/users/", json=account)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(gateway: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await gateway.post("/api/v1/auth/login", data={"username": login, "password": password})


async def tokens_for(gateway: httpx.AsyncClient, account: dict[str, str]) -> dict[str, Any]:
    response = await login(gateway, account["username"], account["password"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_until_refused(gateway: httpx.AsyncClient, access_token: str) -> float:
    """Seconds until the gateway refuses `access_token` (at most 5, API.md §2)."""
    started = time.monotonic()
    while time.monotonic() - started < 5.0:
        response = await gateway.get("/api/v1/users/me", headers=bearer(access_token))
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.1)
    pytest.fail("the access token was still accepted 5 seconds after its session ended")


async def email_to(smtp_sink: SmtpSink, address: str, subject_part: str) -> EmailMessage:
    """The first email to `address` whose subject contains `subject_part` (within 15 s)."""
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        for message in smtp_sink.handler.messages:
            if address in str(message["To"]) and subject_part in str(message["Subject"]):
                return message
        await asyncio.sleep(0.05)
    pytest.fail(f"no email '{subject_part}' to {address} within 15 seconds")


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, message
    content: str = part.get_content()
    return content


def link_token(message: EmailMessage, page: str, origin: str = "") -> str:
    """The token of the `/account/<page>?token=…` link in the plain text of `message`; with
    `origin`, the link must start with it (the platform's ISSUER)."""
    text = plain_text(message)
    found = re.search(re.escape(f"{origin}/account/{page}?token=") + r"([A-Za-z0-9_-]{43})", text)
    assert found is not None, text
    return found.group(1)


def register_oidc_client(platform: Platform, name: str, *options: str) -> dict[str, Any]:
    """Register an OpenID Connect client as an operator does: `python -m auth clients create`
    against the platform's auth database; its JSON answer (the secret, once)."""
    result = subprocess.run(
        [sys.executable, "-m", "auth", "clients", "create", "--name", name, *options],
        env=platform.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    created: dict[str, Any] = json.loads(result.stdout)
    return created
