"""Bad input on every second-factor route: a 4xx problem naming what is wrong, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .support import LOGIN_MFA_URL, AuthHarness, bearer, enrol, password_step, totp_code
from .users_double import Account

CONFIRM_URL = "/api/v1/auth/mfa/totp/confirm"
PROBLEM = "application/problem+json"

BAD_CODES: list[Any] = [
    "12345",
    "1234567",
    "abcdef",
    "12 456",
    "١٢٣٤٥٦",  # Arabic-Indic digits: digits to Unicode, not to an authenticator
    "１２３４５６",  # full-width
    "",
    123456,
    None,
    ["123456"],
    "1" * 1_000,
]


def assert_problem(response: Any, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    if field is not None:
        assert field in {error["field"] for error in response.json()["errors"]}, response.json()


@pytest.mark.parametrize("code", BAD_CODES)
async def test_confirm_refuses_a_malformed_code(
    auth: AuthHarness, account: Account, code: Any
) -> None:
    access = (await auth.login(account))["access_token"]
    await auth.client.post("/api/v1/auth/mfa/totp", headers=bearer(access))
    response = await auth.client.post(CONFIRM_URL, json={"code": code}, headers=bearer(access))
    assert_problem(response, 422, "code")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": "123456", "extra": 1},
        [],
        "123456",
    ],
)
async def test_confirm_refuses_a_malformed_body(
    auth: AuthHarness, account: Account, body: Any
) -> None:
    access = (await auth.login(account))["access_token"]
    response = await auth.client.post(CONFIRM_URL, json=body, headers=bearer(access))
    assert_problem(response, 422)


async def test_second_step_refuses_a_huge_body(auth: AuthHarness) -> None:
    body = {"mfa_token": "a.b", "code": "1" * 10_000}
    assert_problem(await auth.client.post(LOGIN_MFA_URL, json=body), 413)


async def test_confirm_refuses_a_huge_body(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    body = json.dumps({"code": "1" * 2_000_000})
    response = await auth.client.post(
        CONFIRM_URL,
        content=body,
        headers={**bearer(access), "content-type": "application/json"},
    )
    assert response.status_code in (413, 422), response.text
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("code", BAD_CODES)
async def test_second_step_refuses_a_malformed_code(
    auth: AuthHarness, account: Account, code: Any
) -> None:
    await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    response = await auth.client.post(LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": code})
    assert_problem(response, 422, "code")


@pytest.mark.parametrize("mfa_token", ["", None, 12, "x" * 129, {"a": 1}])
async def test_second_step_refuses_a_malformed_token(auth: AuthHarness, mfa_token: Any) -> None:
    response = await auth.client.post(
        LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": "123456"}
    )
    assert_problem(response, 422, "mfa_token")


@pytest.mark.parametrize(
    "mfa_token", ["nonsense", "a.b", ".", "00000000-0000-0000-0000-000000000000." + "A" * 43]
)
async def test_second_step_refuses_an_unknown_token(auth: AuthHarness, mfa_token: str) -> None:
    response = await auth.client.post(
        LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": "123456"}
    )
    assert_problem(response, 401)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"mfa_token": "a.b", "code": "123456", "extra": 1}', "application/json", 422),
        (b'{"mfa_token": "a.b", "mfa_token": "c.d", "code": "123456"}', "application/json", 422),
        (b'{"mfa_token": "a.b", "code": "123456"', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"", "application/json", 422),
        (b'{"mfa_token": "a.b", "code": "\xff"}', "application/json", 422),
        (b"mfa_token=a.b&code=123456", "application/x-www-form-urlencoded", 415),
        (b'{"mfa_token": "a.b", "code": "123456"}', "text/plain", 415),
        (b'{"mfa_token": "' + b"a" * 5000 + b'", "code": "123456"}', "application/json", 413),
        (b"[" * 5000 + b"]" * 5000, "application/json", 413),
        (b"[" * 1500 + b"]" * 1500, "application/json", 422),
    ],
)
async def test_second_step_refuses_a_body_it_does_not_read_one_way(
    auth: AuthHarness, content: bytes, content_type: str, status: int
) -> None:
    response = await auth.client.post(
        LOGIN_MFA_URL, content=content, headers={"content-type": content_type}
    )
    assert_problem(response, status)


async def test_a_malformed_code_spends_no_attempt(auth: AuthHarness, account: Account) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    for _ in range(6):
        response = await auth.client.post(
            LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": "12345"}
        )
        assert response.status_code == 422
    code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    response = await auth.client.post(LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": code})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/auth/mfa"),
        ("POST", "/api/v1/auth/mfa/totp"),
        ("POST", CONFIRM_URL),
        ("DELETE", "/api/v1/auth/mfa/totp"),
        ("POST", "/api/v1/auth/mfa/recovery-codes"),
    ],
)
async def test_every_mfa_route_needs_a_bearer_token(
    auth: AuthHarness, method: str, url: str
) -> None:
    response = await auth.client.request(method, url, json={"code": "123456"})
    assert_problem(response, 401)
