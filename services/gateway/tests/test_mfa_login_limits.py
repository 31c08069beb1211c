"""The login limits on the second login step (API.md §11): client IP + the account its
`mfa_token` names (`<user id>.<random>`), and the client IP alone. The JSON body is read as auth
reads it (common.forms.parse_json_object); a body read otherwise is refused, never forwarded."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest

from .support import GatewayFactory, assert_refused_unforwarded
from .upstream import Served

LOGIN_MFA = "/api/v1/auth/login/mfa"
JSON = {"content-type": "application/json"}


def mfa_token(user_id: str) -> str:
    return f"{user_id}.{secrets.token_urlsafe(32)}"


async def test_the_second_step_is_limited_per_account_whatever_the_ticket(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    victim = str(uuid.uuid4())
    statuses = [
        (
            await gateway.post(LOGIN_MFA, json={"mfa_token": mfa_token(victim), "code": "123456"})
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    refused = await gateway.post(LOGIN_MFA, json={"mfa_token": mfa_token(victim), "code": "1"})
    assert refused.headers["ratelimit-policy"] == '"login";q=2;w=3600'
    other = await gateway.post(
        LOGIN_MFA, json={"mfa_token": mfa_token(str(uuid.uuid4())), "code": "123456"}
    )
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        # Pydantic would read the last of two: a decoy first, the victim's ticket last.
        (
            b'{"mfa_token": "decoy.x", "mfa_token": "victim.y", "code": "1"}',
            "application/json",
            422,
        ),
        (b'{"mfa_token": ["victim.y"], "code": "1"}', "application/json", 422),
        (b'{"mfa_token": null, "code": "1"}', "application/json", 422),
        (b'{"code": "123456"}', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"not json", "application/json", 422),
        (b'{"mfa_token": "\xff.y", "code": "1"}', "application/json", 422),
        (b"mfa_token=victim.y&code=1", "application/x-www-form-urlencoded", 415),
        (b'{"mfa_token": "victim.y", "code": "1"}', "text/plain", 415),
        (b'{"mfa_token": "victim.y", "code": "1"}', None, 415),
        (b'{"mfa_token": "victim.y", "code": "' + b"1" * 5000 + b'"}', "application/json", 413),
    ],
)
async def test_a_second_step_body_read_two_ways_is_refused_and_never_forwarded(
    make_gateway: GatewayFactory,
    upstreams: dict[str, Served],
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    gateway = await make_gateway()
    await assert_refused_unforwarded(
        gateway, upstreams["auth"], LOGIN_MFA, content, content_type, status
    )


async def test_a_wrong_type_names_the_field(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    response = await gateway.post(LOGIN_MFA, json={"mfa_token": 12, "code": "123456"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "mfa_token", "message": "`mfa_token` must be a string."}
    ]


async def test_the_second_step_is_forwarded_as_sent(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    body = json.dumps({"mfa_token": mfa_token(str(uuid.uuid4())), "code": "123456"}).encode()
    response = await gateway.post(LOGIN_MFA, content=body, headers=JSON)
    assert response.status_code == 200
    assert upstreams["auth"].app.state.calls == before + 1
    echoed = response.json()
    assert (echoed["service"], echoed["path"]) == ("auth", LOGIN_MFA)
    assert echoed["body_length"] == len(body)


SIGN_IN_MFA = "/api/v1/auth/authorize/mfa?client_id=oc-x"


async def test_the_sign_in_pages_second_step_shares_the_accounts_limit(
    make_gateway: GatewayFactory,
) -> None:
    """The hosted page's second step (API.md §13) is a form: keyed on the same account as the
    login endpoint's second step, so switching between them gains no guesses."""
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    victim = str(uuid.uuid4())
    page = {"mfa_token": mfa_token(victim), "code": "123456", "csrf_token": "1.x"}
    assert (await gateway.post(SIGN_IN_MFA, data=page)).status_code == 200
    assert (
        await gateway.post(LOGIN_MFA, json={"mfa_token": mfa_token(victim), "code": "1"})
    ).status_code == 200
    assert (await gateway.post(SIGN_IN_MFA, data=page)).status_code == 429


async def test_a_second_step_form_read_otherwise_is_refused(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    for body in (
        "mfa_token=decoy.x&mfa_token=victim.y&code=1&csrf_token=1",
        "mfa_token=victim.y&code=1&csrf_token=1&username=x",
    ):
        response = await gateway.post(
            SIGN_IN_MFA,
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 422, response.text
    assert upstreams["auth"].app.state.calls == before
