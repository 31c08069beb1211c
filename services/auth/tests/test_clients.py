"""The client registry (API.md §13): `clients:manage` only, strict redirect URIs, a confidential
client's secret shown once and kept hashed; and the operators' CLI."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from auth.__main__ import cli
from auth.clients.models import RegisteredClient
from auth.clients.schemas import ClientCreate
from auth.clients.service import hash_client_secret
from typer.testing import CliRunner

from .support import (
    LOGIN_MFA_URL,
    AuthHarness,
    admin_headers,
    bearer,
    enrol,
    password_step,
    register_client,
    running_auth,
    totp_code,
)
from .users_double import Account

CLIENTS = "/api/v1/auth/clients"


async def test_confidential_client_secret_is_shown_once_and_stored_hashed(
    auth: AuthHarness,
) -> None:
    created = await register_client(
        auth,
        name="Billing",
        type="confidential",
        redirect_uris=["https://billing.example.com/callback"],
        post_logout_redirect_uris=["https://billing.example.com/"],
        first_party=True,
        scopes=["openid", "email", "users:read"],
    )
    secret = created["client_secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 43
    assert created["type"] == "confidential"
    assert created["first_party"] is True
    assert created["scopes"] == ["email", "openid", "users:read"]
    assert created["post_logout_redirect_uris"] == ["https://billing.example.com/"]

    headers = await admin_headers(auth)
    read = await auth.client.get(f"{CLIENTS}/{created['client_id']}", headers=headers)
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert read.json() == {k: v for k, v in created.items() if k != "client_secret"}
    listed = await auth.client.get(CLIENTS, headers=headers)
    assert created["client_id"] in [item["client_id"] for item in listed.json()["items"]]
    assert secret not in listed.text

    async with auth.state.db.sessionmaker() as db:
        stored = await db.get(RegisteredClient, created["client_id"])
    assert stored is not None
    assert stored.secret_hash == hash_client_secret(secret) != secret


async def test_public_client_has_no_secret(auth: AuthHarness) -> None:
    created = await register_client(auth)
    assert created["client_secret"] is None
    assert created["type"] == "public"
    assert created["first_party"] is False
    assert created["scopes"] == ["email", "openid", "profile"]
    assert created["client_id"].startswith("oc-")


async def test_deleted_client_is_gone(auth: AuthHarness) -> None:
    created = await register_client(auth)
    headers = await admin_headers(auth)
    url = f"{CLIENTS}/{created['client_id']}"
    assert (await auth.client.delete(url, headers=headers)).status_code == 204
    assert (await auth.client.get(url, headers=headers)).status_code == 404
    again = await auth.client.delete(url, headers=headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


async def test_unknown_or_overlong_client_id_is_404(auth: AuthHarness) -> None:
    headers = await admin_headers(auth)
    for client_id in ("oc-nobody", "x" * 65):
        response = await auth.client.get(f"{CLIENTS}/{client_id}", headers=headers)
        assert response.status_code == 404


async def test_registry_needs_clients_manage(auth: AuthHarness, account: Account) -> None:
    created = await register_client(auth)
    user = bearer((await auth.login(account))["access_token"])
    body = {"name": "x", "redirect_uris": ["https://x.example.com/cb"], "type": "public"}
    url = f"{CLIENTS}/{created['client_id']}"
    for method, path, payload in (
        ("POST", CLIENTS, body),
        ("GET", CLIENTS, None),
        ("GET", url, None),
        ("DELETE", url, None),
    ):
        anonymous = await auth.client.request(method, path, json=payload)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        refused = await auth.client.request(method, path, json=payload, headers=user)
        assert refused.status_code == 403, (method, path)
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await auth.client.get(url, headers=await admin_headers(auth))).status_code == 200


REGISTRABLE = [
    "https://app.example.com/callback",
    "https://app.example.com:8443/cb?tenant=a",
    "http://127.0.0.1:8765/callback",
    "http://[::1]:8765/callback",
    "http://localhost:3000/callback",
]
UNSAFE = [
    "/callback",
    "app.example.com/callback",
    "http://app.example.com/callback",
    "http://10.0.0.1/callback",
    "https://app.example.com/callback#done",
    "https://app.example.com/callback#",
    "https://user:pw@app.example.com/callback",
    "https://@app.example.com/callback",
    "https:///callback",
    "https://app.example.com:99999/cb",
    "https://app.example.com:0/cb",
    # Found by schemathesis against the declared pattern: what it refuses, registration refuses.
    "https://app.example.com:0443/cb",
    "https://app.example.com:/cb",
    "HTTPS://app.example.com/cb",
    "https://[2001:db8::1]/cb",
    "javascript:alert(1)",
    "ftp://app.example.com/callback",
    "com.example.app:/callback",
    "https://app.example.com/call back",
    "https://app.exämple.com/callback",
    "https://app.example.com;default-src/cb",
    "https://app_example.com/cb",
    "https://[zz]/cb",
    "https://app.example.com/\x00",
    "",
    "https://app.example.com/" + "a" * 2000,
]


def test_the_declared_pattern_is_the_registration_rule() -> None:
    """The API document's pattern for a redirect URI admits exactly what registers (found by
    schemathesis: the pattern was not declared, so a schema-valid `"0"` was a 422)."""
    pattern = ClientCreate.model_json_schema()["properties"]["redirect_uris"]["items"]["pattern"]
    assert [uri for uri in REGISTRABLE if re.fullmatch(pattern, uri)] == REGISTRABLE
    assert [uri for uri in UNSAFE if re.fullmatch(pattern, uri) and len(uri) <= 2000] == []
    # And `openid` among the scopes is declared, as it is required.
    scopes = ClientCreate.model_json_schema()["properties"]["scopes"]
    assert scopes["contains"] == {"const": "openid"}


@pytest.mark.parametrize("uri", REGISTRABLE)
async def test_registrable_redirect_uris(auth: AuthHarness, uri: str) -> None:
    created = await register_client(auth, redirect_uris=[uri])
    assert created["redirect_uris"] == [uri]


@pytest.mark.parametrize("uri", UNSAFE)
async def test_unsafe_redirect_uri_is_refused_naming_it(auth: AuthHarness, uri: str) -> None:
    response = await auth.client.post(
        CLIENTS,
        json={"name": "x", "redirect_uris": ["https://ok.example.com/cb", uri], "type": "public"},
        headers=await admin_headers(auth),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["redirect_uris.1"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"redirect_uris": []}, "redirect_uris"),
        ({"post_logout_redirect_uris": ["http://example.com/"]}, "post_logout_redirect_uris.0"),
        ({"type": "service"}, "type"),
        ({"scopes": ["profile", "email"]}, "scopes"),
        ({"scopes": ["openid", "everything"]}, "scopes.1"),
        ({"scopes": ["openid", "USERS:READ"]}, "scopes.1"),
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"first_party": "maybe"}, "first_party"),
        # Found by schemathesis: the document's boolean refuses these, so registration does.
        ({"first_party": "yes"}, "first_party"),
        ({"first_party": 1}, "first_party"),
        ({"first_party": "true"}, "first_party"),
        ({"client_secret": "mine"}, "client_secret"),
    ],
)
async def test_bad_registration_is_a_422_naming_the_field(
    auth: AuthHarness, fields: dict[str, Any], field: str
) -> None:
    body = {"name": "x", "redirect_uris": ["https://ok.example.com/cb"], "type": "public", **fields}
    response = await auth.client.post(CLIENTS, json=body, headers=await admin_headers(auth))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_missing_type_or_unparseable_body_is_a_422(auth: AuthHarness) -> None:
    headers = await admin_headers(auth)
    missing = await auth.client.post(
        CLIENTS, json={"name": "x", "redirect_uris": ["https://ok.example.com/cb"]}, headers=headers
    )
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["type"]
    garbage = await auth.client.post(
        CLIENTS, content=b"{nope", headers={**headers, "content-type": "application/json"}
    )
    assert garbage.status_code == 422


def test_cli_registers_a_client_and_lists_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("AUTH_DATABASE_URL", database_url)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "clients",
            "create",
            "--name",
            "Ops console",
            "--type",
            "confidential",
            "--redirect-uri",
            "https://ops.example.com/callback",
            "--redirect-uri",
            "http://127.0.0.1:9000/callback",
            "--first-party",
            "--scope",
            "openid",
            "--scope",
            "users:read",
        ],
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["client_secret"]
    assert created["first_party"] is True
    assert created["redirect_uris"] == [
        "https://ops.example.com/callback",
        "http://127.0.0.1:9000/callback",
    ]
    listed = runner.invoke(cli, ["clients", "list"])
    assert listed.exit_code == 0, listed.output
    clients = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = next(c for c in clients if c["client_id"] == created["client_id"])
    assert "client_secret" not in mine
    assert created["client_secret"] not in listed.stdout


def test_cli_refuses_an_unsafe_redirect_uri(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("AUTH_DATABASE_URL", database_url)
    result = CliRunner().invoke(
        cli, ["clients", "create", "--name", "x", "--redirect-uri", "http://evil.example.com/cb"]
    )
    assert result.exit_code == 2
    assert "redirect_uris.0" in result.stderr
    assert "https" in result.stderr


async def test_admin_requires_mfa_holds_back_the_registry_without_a_second_factor(
    database_url: str,
) -> None:
    """`clients:manage` is an admin permission like `users:*` (API.md §9): a client signs anyone
    in, so with ADMIN_REQUIRES_MFA a password-only admin token cannot register or list them."""
    registration = {"name": "App", "redirect_uris": ["https://app.example/cb"], "type": "public"}
    async with running_auth(database_url, admin_requires_mfa=True) as harness:
        admin = harness.users.add(roles=("user", "admin"))
        password_only = bearer((await harness.login(admin))["access_token"])
        for answer in (
            await harness.client.post(CLIENTS, json=registration, headers=password_only),
            await harness.client.get(CLIENTS, headers=password_only),
        ):
            assert answer.status_code == 401, answer.text
            assert 'acr_values="mfa"' in answer.headers["www-authenticate"]
        enrolled = await enrol(harness, (await harness.login(admin))["access_token"])
        ticket = await password_step(harness.client, admin)
        second = await harness.client.post(
            LOGIN_MFA_URL,
            json={"mfa_token": ticket, "code": totp_code(enrolled.secret, harness.clock(), 1)},
        )
        assert second.status_code == 200, second.text
        with_mfa = bearer(second.json()["access_token"])
        created = await harness.client.post(CLIENTS, json=registration, headers=with_mfa)
        assert created.status_code == 201, created.text
