"""What schemathesis found against the users API, each pinned: the rules the code enforces are the
ones the document declares, and the answers are the ones it lists."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from users.accounts.schemas import FULL_NAME_PATTERN, UserCreate, UserUpdate

from .support import UsersHarness


async def an_admin(users: UsersHarness) -> tuple[dict[str, Any], dict[str, str]]:
    admin = await users.register()
    await users.make_admin(admin)
    return admin, users.admin_bearer(admin)


async def test_other_methods_of_me_are_405_with_the_paths_methods(users: UsersHarness) -> None:
    # `/me` was taken for a user id: DELETE /me answered 422 "user_id is not a UUID".
    user = await users.register()
    response = await users.client.delete("/api/v1/users/me", headers=users.bearer(user))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, OPTIONS, PATCH"
    export = await users.client.delete("/api/v1/users/export.csv", headers=users.bearer(user))
    assert export.status_code == 405


async def test_a_deactivated_account_stays_readable_at_its_url(users: UsersHarness) -> None:
    # DELETE deactivates (API.md §1: `is_active` is part of UserRead); it does not erase.
    _, admin = await an_admin(users)
    other = await users.register()
    url = f"/api/v1/users/{other['id']}"
    assert (await users.client.delete(url, headers=admin)).status_code == 204
    read = await users.client.get(url, headers=admin)
    assert read.status_code == 200
    assert read.json()["is_active"] is False
    listed = await users.client.get("/api/v1/users/?is_active=false&limit=100", headers=admin)
    assert other["id"] in {item["id"] for item in listed.json()["items"]}


@pytest.mark.parametrize("cursor", ["0." + "0" * 32, "9" * 16 + "." + "f" * 32])
async def test_every_cursor_the_document_allows_is_a_page(users: UsersHarness, cursor: str) -> None:
    # A cursor of the declared shape answered 422 "is not a valid cursor".
    _, admin = await an_admin(users)
    response = await users.client.get(f"/api/v1/users/?cursor={cursor}", headers=admin)
    assert response.status_code == 200, response.text


async def test_offset_after_a_cursor_skips_that_many(users: UsersHarness) -> None:
    # Both together answered 422, which the document could not say.
    _, admin = await an_admin(users)
    for _ in range(3):
        await users.register()
    first = (await users.client.get("/api/v1/users/?limit=1", headers=admin)).json()
    cursor = first["next_cursor"]
    following = await users.client.get(f"/api/v1/users/?limit=2&cursor={cursor}", headers=admin)
    skipped = await users.client.get(
        f"/api/v1/users/?limit=1&cursor={cursor}&offset=1", headers=admin
    )
    assert skipped.status_code == 200
    assert skipped.json()["items"][0]["id"] == following.json()["items"][1]["id"]


def test_the_registration_rules_are_in_the_document() -> None:
    schema = UserCreate.model_json_schema()["properties"]
    assert schema["username"]["pattern"] == "^[A-Za-z0-9_-]{3,50}$"
    assert (schema["password"]["minLength"], schema["password"]["maxLength"]) == (8, 128)
    with pytest.raises(ValidationError):  # 129 characters: the document said up to 512
        UserCreate(email="a@example.org", username="ada", password="x" * 129, full_name="Ada")


def test_profile_changes_never_offer_null() -> None:
    # null is refused ("leave the field out"), so the schema must not allow it.
    for field in UserUpdate.model_json_schema()["properties"].values():
        assert "anyOf" not in field
        assert "default" not in field


@pytest.mark.parametrize(
    "name",
    [
        "Ada",
        "  Ada Lovelace\t",
        "\x0bÈ \xa0\u200a\u2007\u2009\u2006\x1d",
        "A" * 100,
        " " * 50 + "A" * 100 + " " * 50,
        "",
        "   ",
        "A" * 101,
        "Ada\x00",
        "A\x7fda",
        "\u3000",
        "\ufeffAda",
        str(uuid.uuid4()),
    ],
)
def test_the_full_name_pattern_is_the_validator(name: str) -> None:
    declared = re.fullmatch(FULL_NAME_PATTERN.strip("^$"), name) is not None and len(name) <= 200
    try:
        UserUpdate(full_name=name)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert declared == accepted


async def test_a_special_use_domain_is_refused_as_the_document_says(users: UsersHarness) -> None:
    # A schema-valid `…@….test` answered 422, naming `email.function-after[_email(), ...]`: the
    # document now declares the special-use names, and the refusal names the field.
    user = await users.register()
    pattern = UserUpdate.model_json_schema()["properties"]["email"]["pattern"]
    for address in ("ada@mail.test", "ada@printer.LOCAL", "ada@x.onion"):
        assert re.match(pattern, address) is None
        response = await users.client.patch(
            "/api/v1/users/me", json={"email": address}, headers=users.bearer(user)
        )
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["email"]
    assert re.match(pattern, "ada@contest.example.org") is not None
