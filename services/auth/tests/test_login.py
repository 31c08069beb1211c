"""Login: the token pair, the RFC 9068 access token, and the failure answers."""

from __future__ import annotations

from common.testing import AUDIENCE, ISSUER
from common.tokens import JwksCache, TokenVerifier

from .support import AuthHarness, claims_of, header_of
from .users_double import Account


async def test_login_returns_a_token_pair(auth: AuthHarness, account: Account) -> None:
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == auth.settings.refresh_idle_timeout
    assert len(body["refresh_token"]) >= 43  # 256 bits, urlsafe base64


async def test_access_token_follows_rfc_9068(auth: AuthHarness) -> None:
    admin = auth.users.add(roles=("admin",))
    pair = await auth.login(admin)
    header = header_of(pair["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {key["kid"] for key in (await auth.jwks())["keys"]}
    claims = claims_of(pair["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == admin.user_id
    assert claims["client_id"] == "gatehouse"
    assert claims["roles"] == ["admin"]
    assert claims["scope"] == "clients:manage users:manage users:read"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert claims["sid"]


async def test_access_token_verifies_with_the_published_keys(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    verifier = TokenVerifier(JwksCache(auth.jwks), issuer=ISSUER, audience=AUDIENCE)
    claims = await verifier.verify(pair["access_token"])
    assert claims.subject == account.user_id


async def test_login_by_email(auth: AuthHarness, account: Account) -> None:
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.email, "password": account.password}
    )
    assert response.status_code == 200


async def test_login_calls_users_with_a_service_token(auth: AuthHarness, account: Account) -> None:
    await auth.login(account)
    assert frozenset({"credentials:verify", "users:authorization"}) in auth.users.scopes_seen


async def test_wrong_password_is_401_problem(auth: AuthHarness, account: Account) -> None:
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "wrong password"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401


async def test_unknown_user_gets_the_same_answer(auth: AuthHarness, account: Account) -> None:
    wrong = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "nope-nope"}
    )
    unknown = await auth.client.post(
        "/api/v1/auth/login", data={"username": "nobody-" + account.username, "password": "x"}
    )
    assert unknown.status_code == 401
    assert unknown.json() == wrong.json()


async def test_users_down_is_503(auth: AuthHarness, account: Account) -> None:
    auth.users.down = True
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


async def test_missing_form_fields_are_422(auth: AuthHarness) -> None:
    response = await auth.client.post("/api/v1/auth/login", data={"username": "someone"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["password"]


async def test_a_form_read_two_ways_is_refused(auth: AuthHarness, account: Account) -> None:
    """One reading only (common.forms, as the gateway keys its limits): never the last of two
    names, never a multipart body."""
    form = "application/x-www-form-urlencoded"
    repeated = await auth.client.post(
        "/api/v1/auth/login",
        content=f"username=decoy&username={account.username}&password={account.password}",
        headers={"content-type": form},
    )
    assert repeated.status_code == 422
    assert repeated.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in repeated.json()["errors"]] == ["username"]
    multipart = await auth.client.post(
        "/api/v1/auth/login",
        files={"username": (None, account.username), "password": (None, account.password)},
    )
    assert multipart.status_code == 415
    extra = await auth.client.post(
        "/api/v1/auth/login",
        data={"username": account.username, "password": account.password, "x": "1"},
    )
    assert extra.status_code == 422


async def test_login_name_reaches_users_verbatim_and_matches_canonically(
    auth: AuthHarness, account: Account
) -> None:
    """auth never rewrites or compares the name itself; users matches it by its canonical form
    (common.identity: NFKC + casefold), so a full-width or upper-case spelling is the account."""
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in account.username.upper())
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": full_width, "password": account.password}
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["sub"] == account.user_id


async def test_users_hashing_busy_is_503_with_its_retry_after(
    auth: AuthHarness, account: Account
) -> None:
    """users' full hashing queue answers 503 + Retry-After at once; auth passes both on (not a
    500, and without waiting for its own timeout), so the client knows when to come back."""
    auth.users.busy = True
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/problem+json"
