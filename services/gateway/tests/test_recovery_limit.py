"""The recovery limit (API.md §11): reset link requests per client IP + the canonical address read
strictly from the JSON body; a body users could read otherwise is refused and never forwarded.
Verification resends per client IP + the account (the token's `sub`)."""

from __future__ import annotations

import uuid

import pytest
from common.testing import TokenFactory

from .support import GatewayFactory, assert_refused_unforwarded, bearer, unique_id
from .upstream import Served

FORGOT = "/api/v1/users/password/forgot"
RESET = "/api/v1/users/password/reset"
JSON = {"content-type": "application/json"}


async def test_the_recovery_routes_are_public(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["users"].app.state.calls
    forgot = await gateway.post(FORGOT, json={"email": f"{unique_id()}@example.org"})
    reset = await gateway.post(RESET, json={"token": "t", "new_password": "p"})
    assert (forgot.status_code, reset.status_code) == (200, 200)  # the double echoes
    assert upstreams["users"].app.state.calls == before + 2


async def test_an_address_gets_its_limit_whatever_its_spelling(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_recovery_rate_limit="2/hour")
    local = "vic" + unique_id()[:8]
    spellings = [f"{local}@example.org", f"{local.upper()}@EXAMPLE.ORG"]
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in spellings[0])
    statuses = []
    for email in (*spellings, full_width):
        statuses.append((await gateway.post(FORGOT, json={"email": email})).status_code)
    assert statuses == [200, 200, 429]
    refused = await gateway.post(FORGOT, json={"email": spellings[0]})
    assert refused.status_code == 429
    assert refused.headers["ratelimit-policy"] == '"recovery";q=2;w=3600'
    assert int(refused.headers["retry-after"]) > 0
    # Another address has its own; the login limits are not spent by it.
    other = await gateway.post(FORGOT, json={"email": f"other{unique_id()}@example.org"})
    assert other.status_code == 200
    login = await gateway.post("/api/v1/auth/login", data={"username": local, "password": "x"})
    assert login.status_code == 200


async def test_the_default_is_five_an_hour(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    email = f"{unique_id()}@example.org"
    statuses = [(await gateway.post(FORGOT, json={"email": email})).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"email": "decoy@example.org", "email": "victim@example.org"}', "application/json", 422),
        (b"email=victim@example.org", "application/x-www-form-urlencoded", 415),
        (b'{"email": "victim@example.org"}', "text/plain", 415),
        (b'{"email": "victim@example.org"}', None, 415),
        (b"not json", "application/json", 422),
        (b'["victim@example.org"]', "application/json", 422),
        (b'"victim@example.org"', "application/json", 422),
        (b'{"email": ["victim@example.org"]}', "application/json", 422),
        (b'{"email": null}', "application/json", 422),
        (b"{}", "application/json", 422),
        (b'{"email": "\xff@example.org"}', "application/json", 422),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 413),
        (b'{"a": ' * 1500 + b"1" + b"}" * 1500, "application/json", 422),
    ],
)
async def test_bodies_users_could_read_otherwise_are_refused_and_never_forwarded(
    make_gateway: GatewayFactory,
    upstreams: dict[str, Served],
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    gateway = await make_gateway()
    await assert_refused_unforwarded(
        gateway, upstreams["users"], FORGOT, content, content_type, status
    )


RESEND = "/api/v1/users/me/email/verification"


async def test_verification_resends_count_under_the_recovery_limit_per_account(
    make_gateway: GatewayFactory, upstreams: dict[str, Served], tokens: TokenFactory
) -> None:
    gateway = await make_gateway()
    subject = str(uuid.uuid4())
    me = bearer(tokens, subject)
    statuses = [(await gateway.post(RESEND, headers=me)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]  # the double answers 200 for users' 202
    refused = await gateway.post(RESEND, headers=me)
    assert refused.headers["ratelimit-policy"] == '"recovery";q=5;w=3600'
    # Another account has its own; a new token of the same account does not reset it.
    other = await gateway.post(RESEND, headers=bearer(tokens, str(uuid.uuid4())))
    assert other.status_code == 200
    again = await gateway.post(RESEND, headers=bearer(tokens, subject))
    assert again.status_code == 429


async def test_a_resend_needs_a_token_at_the_gateway(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["users"].app.state.calls
    response = await gateway.post(RESEND)
    assert response.status_code == 401
    assert upstreams["users"].app.state.calls == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/users/email/verify"),
        ("GET", "/account/reset-password?token=abc"),
        ("POST", "/account/reset-password"),
        ("GET", "/account/verify-email?token=abc"),
        ("POST", "/account/verify-email"),
        ("GET", "/account/static/pages.css"),
    ],
)
async def test_the_verification_link_and_the_pages_are_public(
    make_gateway: GatewayFactory, upstreams: dict[str, Served], method: str, path: str
) -> None:
    gateway = await make_gateway()
    before = upstreams["users"].app.state.calls
    response = await gateway.request(method, path)
    assert response.status_code == 200, response.text  # the double echoes
    assert upstreams["users"].app.state.calls == before + 1
    echoed = response.json()
    assert echoed["path"] == path.partition("?")[0]


async def test_no_other_account_path_is_routed(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    for path in ("/account/", "/account/other", "/account/static/other.css", "/account"):
        assert (await gateway.get(path)).status_code == 404
