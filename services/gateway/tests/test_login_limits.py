"""The login limits count the account auth checks (API.md §11): the gateway reads the login body
with the reader auth uses (common.forms), keys on the canonical name, and refuses, without
forwarding, any body it could read otherwise. A per-IP limit sits beside the per-account one, and
the other password oracles (client secrets, the password change) count under the same limits."""

from __future__ import annotations

import base64

import pytest
from common.testing import TokenFactory

from .support import GatewayFactory, bearer, unique_id
from .upstream import Served

LOGIN = "/api/v1/auth/login"
TOKEN = "/api/v1/auth/token"
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_a_repeated_username_is_refused_and_never_forwarded(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    before = upstreams["auth"].app.state.calls
    for decoy in ("decoy1", "decoy2", "decoy3"):
        response = await gateway.post(
            LOGIN, content=f"username={decoy}&username=victim&password=x", headers=FORM
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == "username"
    assert upstreams["auth"].app.state.calls == before


async def test_look_alike_spellings_of_a_name_share_its_limit(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    name = "vic" + unique_id()[:8]
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in name.upper())
    statuses = []
    for spelling in (name, full_width, name.upper()):
        response = await gateway.post(LOGIN, data={"username": spelling, "password": "x"})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]


async def test_a_multipart_login_is_refused_and_never_forwarded(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    response = await gateway.post(
        LOGIN,
        files={
            "username": (None, "victim"),
            "x": (None, "&username=decoy&"),
            "password": (None, "x"),
        },
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    assert upstreams["auth"].app.state.calls == before


async def test_a_login_form_with_fifty_fields_is_4xx(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    body = "&".join(f"f{i}=1" for i in range(50)) + "&username=ada&password=x"
    response = await gateway.post(LOGIN, content=body, headers=FORM)
    assert 400 <= response.status_code < 500
    assert upstreams["auth"].app.state.calls == before


async def test_one_address_has_a_login_limit_across_names(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_login_ip_rate_limit="3/hour")
    statuses = [
        (await gateway.post(LOGIN, data={"username": unique_id(), "password": "x"})).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = await gateway.post(LOGIN, data={"username": unique_id(), "password": "x"})
    assert limited.headers["ratelimit-policy"] == '"login_ip";q=3;w=3600'
    assert int(limited.headers["retry-after"]) >= 1


async def test_client_credentials_are_limited_per_address_and_client_id(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    client_id = "svc-" + unique_id()[:8]
    basic = base64.b64encode(f"{client_id}:guess".encode()).decode()
    statuses = [
        (
            await gateway.post(
                TOKEN,
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": "guess",
                },
            )
        ).status_code,
        (
            await gateway.post(
                TOKEN,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
        ).status_code,
        (
            await gateway.post(
                TOKEN,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
        ).status_code,
    ]
    assert statuses == [200, 200, 429]
    other = await gateway.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": "x" + client_id,
            "client_secret": "g",
        },
    )
    assert other.status_code == 200
    # Refresh grants are not client logins.
    refresh = await gateway.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": "r"})
    assert refresh.status_code == 200


async def test_a_repeated_client_id_is_refused(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    response = await gateway.post(
        TOKEN,
        content="grant_type=client_credentials&client_id=a&client_id=b&client_secret=x",
        headers=FORM,
    )
    assert 400 <= response.status_code < 500
    assert upstreams["auth"].app.state.calls == before


async def test_the_password_change_counts_under_the_login_limits(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    alice, bob = bearer(tokens, unique_id()), bearer(tokens, unique_id())
    body = {"current_password": "guess", "new_password": "whatever it is 1"}
    statuses = [
        (await gateway.put("/api/v1/users/me/password", json=body, headers=alice)).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert (await gateway.put("/api/v1/users/me/password", json=body, headers=bob)).status_code == (
        200
    )


async def test_the_password_change_counts_under_the_per_address_limit(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(gateway_login_ip_rate_limit="2/hour")
    body = {"current_password": "guess", "new_password": "whatever it is 1"}
    assert (
        await gateway.post(LOGIN, data={"username": unique_id(), "password": "x"})
    ).status_code == 200
    change = await gateway.put(
        "/api/v1/users/me/password", json=body, headers=bearer(tokens, unique_id())
    )
    assert change.status_code == 200
    again = await gateway.put(
        "/api/v1/users/me/password", json=body, headers=bearer(tokens, unique_id())
    )
    assert again.status_code == 429


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded; charset=latin-1"]
)
async def test_a_login_body_of_another_type_is_415(
    make_gateway: GatewayFactory, content_type: str
) -> None:
    gateway = await make_gateway()
    response = await gateway.post(
        LOGIN, content="username=ada&password=x", headers={"content-type": content_type}
    )
    assert response.status_code == 415


async def test_the_second_factor_counts_under_the_per_address_limit(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_login_ip_rate_limit="2/hour")
    assert (
        await gateway.post(LOGIN, data={"username": unique_id(), "password": "x"})
    ).status_code == (200)
    mfa = {"mfa_token": "t", "code": "123456"}
    assert (await gateway.post("/api/v1/auth/login/mfa", json=mfa)).status_code == 200
    limited = await gateway.post("/api/v1/auth/login/mfa", json=mfa)
    assert limited.status_code == 429
    assert limited.headers["ratelimit-policy"] == '"login_ip";q=2;w=3600'


async def test_refresh_grants_are_not_logins(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_login_ip_rate_limit="2/hour")
    refresh = {"grant_type": "refresh_token", "refresh_token": "r"}
    statuses = [(await gateway.post(TOKEN, data=refresh)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


SIGN_IN = "/api/v1/auth/authorize?client_id=oc-x&response_type=code"


async def test_the_hosted_sign_in_page_counts_under_the_login_limits(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    """The sign-in page posts a password (API.md §13): the same per-account limit as the login
    form, read with the page's own field names (the CSRF token among them)."""
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")
    name = "ada" + unique_id()[:8]
    page_form = {"username": name, "password": "x", "csrf_token": "1.t"}
    first = await gateway.post(SIGN_IN, data=page_form)
    assert first.status_code == 200
    assert first.json()["query"] == "client_id=oc-x&response_type=code"  # passed on as sent
    assert (
        await gateway.post(SIGN_IN, data={**page_form, "username": name.upper()})
    ).status_code == 200
    limited = await gateway.post(LOGIN, data={"username": name, "password": "x"})
    assert limited.status_code == 429


async def test_a_sign_in_form_it_cannot_read_as_auth_does_is_refused(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    before = upstreams["auth"].app.state.calls
    for body in (
        "username=decoy&username=victim&password=x&csrf_token=1",
        "username=victim&password=x&csrf_token=1&grant_type=password",
    ):
        response = await gateway.post(SIGN_IN, content=body, headers=FORM)
        assert response.status_code == 422, response.text
    assert upstreams["auth"].app.state.calls == before


async def test_a_refused_sign_in_page_post_is_a_page(make_gateway: GatewayFactory) -> None:
    """A browser's form post expects a page: the gateway's own refusal of one (here the login
    limit) is HTML with the refusal's status and Retry-After, never problem+json."""
    gateway = await make_gateway(gateway_login_rate_limit="1/hour")
    page_form = {"username": "ada" + unique_id()[:8], "password": "x", "csrf_token": "1.t"}
    assert (await gateway.post(SIGN_IN, data=page_form)).status_code == 200
    limited = await gateway.post(SIGN_IN, data=page_form)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "text/html; charset=utf-8"
    assert limited.headers["retry-after"].isdigit()
    assert limited.headers["cache-control"] == "no-store"
    policy = limited.headers["content-security-policy"]
    assert policy.startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in policy
    assert "<h1>Too Many Requests</h1>" in limited.text
    assert f"try again in {limited.headers['retry-after']} seconds" in limited.text
    assert "<script" not in limited.text
    malformed = await gateway.post(SIGN_IN, content="username=a&username=b", headers=FORM)
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "text/html; charset=utf-8"
    # The API's own login form stays problem+json.
    api = await gateway.post(LOGIN, content="username=a&username=b", headers=FORM)
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_the_passkey_posts_count_per_address(make_gateway: GatewayFactory) -> None:
    """The sign-in page's passkey options and answers count under the per-address login limit:
    the answer (a form post) is refused with a page, the options (the script's fetch) with
    problem+json."""
    gateway = await make_gateway(gateway_login_ip_rate_limit="2/hour")
    query = "?client_id=oc-x&response_type=code"
    options = f"/api/v1/auth/authorize/passkey/options{query}"
    answer = f"/api/v1/auth/authorize/passkey{query}"
    assert (await gateway.post(options, data={"csrf_token": "1.t"})).status_code == 200
    assert (await gateway.post(answer, data={"credential": "{}"})).status_code == 200
    refused_options = await gateway.post(options, data={"csrf_token": "1.t"})
    assert refused_options.status_code == 429
    assert refused_options.headers["content-type"].startswith("application/problem+json")
    refused_answer = await gateway.post(answer, data={"credential": "{}"})
    assert refused_answer.status_code == 429
    assert refused_answer.headers["content-type"] == "text/html; charset=utf-8"
