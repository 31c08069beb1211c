"""POST /api/v1/users/: the registration rules of API.md §1 and every bad input as a 422/409."""

from __future__ import annotations

import json
from typing import Any

import pytest
from users.passwords.policy import common_passwords

from .support import PASSWORD, UsersHarness


async def test_registration_returns_the_user_without_secrets(users: UsersHarness) -> None:
    user = await users.register(email="Ada.Lovelace@Example.org", full_name="  Ada Lovelace ")
    assert set(user) == {
        "id",
        "email",
        "username",
        "full_name",
        "is_active",
        "email_verified",
        "pending_email",
        "roles",
        "created_at",
    }
    assert user["roles"] == ["user"]
    assert user["is_active"] is True
    assert user["full_name"] == "Ada Lovelace"
    assert PASSWORD not in str(user)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "ADA@EXAMPLE.ORG"),
        ("username", "ADA_LOVELACE"),
        ("username", "ａｄａ＿ｌｏｖｅｌａｃｅ"),  # full-width look-alike of ada_lovelace
        ("username", "ADA_\u217cOVELACE"),  # U+217C SMALL ROMAN NUMERAL FIFTY: NFKC "l"
        ("email", "ＡＤＡ@example.org"),  # full-width local part
        ("email", "ada@ＥＸＡＭＰＬＥ.ORG"),
    ],
)
async def test_taken_names_are_a_conflict_whatever_their_case_or_form(
    users: UsersHarness, field: str, value: str
) -> None:
    await users.register(email="ada@example.org", username="ada_lovelace")
    other = {"email": "someone@example.org", "username": "someone", field: value}
    body = {**other, "password": PASSWORD, "full_name": "Someone"}
    response = await users.client.post("/api/v1/users/", json=body)
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def valid() -> dict[str, Any]:
    return {
        "email": "valid@example.org",
        "username": "valid_name",
        "password": PASSWORD,
        "full_name": "Valid Name",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a" * 400 + "@example.org"}, "email"),
        ({"username": "ab"}, "username"),
        ({"username": "x" * 51}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "аdа"}, "username"),  # Cyrillic а: a confusable, refused outright
        ({"username": "nul\x00byte"}, "username"),
        ({"password": "short"}, "password"),
        ({"password": "p" * 129}, "password"),
        ({"password": "x" * 100_000}, "password"),
        ({"password": "password1234"}, "password"),
        ({"password": "Qwertyuiop"}, "password"),
        ({"full_name": ""}, "full_name"),
        ({"full_name": "   "}, "full_name"),
        ({"full_name": "x" * 101}, "full_name"),
        ({"full_name": "nul\x00byte"}, "full_name"),
        ({"email": "\ufdfa" * 20 + "@example.org"}, "email"),  # NFKC: 18 characters each
        ({"email": "\ud800@example.org"}, "email"),  # a lone surrogate
        ({"full_name": "x\ud800"}, "full_name"),
        ({"password": "\udfff" + PASSWORD}, "password"),
        ({"email": 42}, "email"),
        ({"password": None}, "password"),
        ({"roles": ["admin"]}, "roles"),
        ({"is_active": False}, "is_active"),
    ],
)
async def test_bad_registrations_name_the_field(
    users: UsersHarness, changes: dict[str, Any], field: str
) -> None:
    # json.dumps escapes lone surrogates (\ud800) as clients may; httpx's json= cannot send them.
    body = json.dumps({**valid(), **changes}).encode()
    response = await users.client.post(
        "/api/v1/users/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f.endswith(field) for f in fields), fields
    assert (await users.client.get("/api/v1/users/me")).status_code == 401  # nothing created


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"email": ', b"\xff\xfe", b"null"])
async def test_malformed_bodies_are_422(users: UsersHarness, body: bytes) -> None:
    response = await users.client.post(
        "/api/v1/users/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "password",
    [
        "p" * 100,
        "🔐🔑 emoji passwords are fine 🎉",
        "日本語のパスフレーズです",
        "x" * 128,
    ],
)
async def test_long_and_unicode_passwords_are_accepted(users: UsersHarness, password: str) -> None:
    user = await users.register(password=password)
    response = await users.check_credentials(user["username"], password)
    assert response.status_code == 200, response.text


async def test_every_character_is_significant_beyond_72_bytes(users: UsersHarness) -> None:
    prefix = "q" * 72
    user = await users.register(password=prefix + "-first")
    response = await users.client.post(
        "/internal/v1/credentials/verify",
        json={"login": user["username"], "password": prefix + "-other"},
        headers=users.service_bearer("credentials:verify"),
    )
    assert response.status_code == 401


def test_the_bundled_list_has_the_most_common_passwords() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "12345678"} <= passwords


async def test_compatibility_forms_are_stored_normalised(users: UsersHarness) -> None:
    user = await users.register(email="ＢＯＢ.ｘ@example.org", username="ｂｏｂ＿ｘ")
    assert user["email"] == "BOB.x@example.org"
    assert user["username"] == "bob_x"
