"""The route table for methods the platform does not serve (found by schemathesis: TRACE of the
well-known documents answered the gateway's 404, and TRACE of a protected prefix a 401 where the
service would say 405 with the path's methods)."""

from __future__ import annotations

import pytest
from gateway import routes
from gateway.routes import Access


@pytest.mark.parametrize("method", ["TRACE", "POST", "DELETE", "OPTIONS"])
def test_other_methods_of_the_well_known_documents_reach_auth(method: str) -> None:
    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        route = routes.match(method, path)
        assert route is not None
        assert route.upstream == "auth"
        assert route.access is Access.PUBLIC


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "BREW"])
def test_methods_no_route_serves_need_no_token(method: str) -> None:
    route = routes.match(method, "/api/v1/users/me")
    assert route is not None
    assert route.upstream == "users"
    assert route.access is Access.PUBLIC


def test_served_methods_keep_their_access() -> None:
    for method, path in (
        ("DELETE", "/api/v1/users/0b7e3c3e-52f5-4a4e-9a53-6c1c2a3b4d5e"),
        ("GET", "/api/v1/users/"),
        ("PATCH", "/api/v1/users/me"),
        ("HEAD", "/api/v1/users/me"),
        ("PUT", "/api/v1/users/me/password"),
    ):
        route = routes.match(method, path)
        assert route is not None
        assert route.access is Access.BEARER, (method, path)
    assert routes.match("GET", "/.well-known/nothing") is None


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/",
        "/api/v1/users/password/forgot",
        "/api/v1/users/password/reset",
        "/api/v1/users/email/verify",
        "/api/v1/users/me/email/verification",
    ],
)
def test_a_method_a_known_path_does_not_serve_needs_no_token(method: str, path: str) -> None:
    """Found by schemathesis: PUT of the registration path was the gateway's 401 (the prefix's
    token check ran first) where users says 405 with the path's `Allow` (API.md §3)."""
    route = routes.match(method, path)
    assert route is not None
    assert (route.upstream, route.access) == ("users", Access.PUBLIC)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/clients"),
        ("POST", "/api/v1/auth/clients"),
        ("GET", "/api/v1/auth/clients/oc-abc"),
        ("DELETE", "/api/v1/auth/clients/oc-abc"),
    ],
)
def test_client_registry_is_a_bearer_route(method: str, path: str) -> None:
    """A revoked admin token is refused at the gateway (the revocation check of bearer routes)."""
    route = routes.match(method, path)
    assert route is not None
    assert route.upstream == "auth"
    assert route.access is Access.BEARER


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions/0b7e3c3e-52f5-4a4e-9a53-6c1c2a3b4d5e"),
        ("DELETE", "/api/v1/auth/sessions/not-a-session"),
    ],
)
def test_the_session_routes_need_a_token_checked_here(method: str, path: str) -> None:
    """API.md §10: an ended session's access token is refused by the gateway's revocation check,
    which runs only on bearer routes."""
    route = routes.match(method, path)
    assert route is not None
    assert (route.upstream, route.access) == ("auth", Access.BEARER)


def test_userinfo_is_a_bearer_route_and_the_sign_in_post_is_counted() -> None:
    userinfo = routes.match("GET", "/api/v1/auth/userinfo")
    assert userinfo is not None
    assert userinfo.access is Access.BEARER
    sign_in = routes.match("POST", "/api/v1/auth/authorize")
    assert sign_in is not None
    assert sign_in.access is Access.LOGIN
    assert sign_in.counted is routes.Counted.SIGN_IN
    page = routes.match("GET", "/api/v1/auth/authorize")
    assert page is not None
    assert page.access is Access.PUBLIC


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/auth/authorize/passkey",
        "/api/v1/auth/authorize/passkey/options",
        "/api/v1/auth/authorize/mfa/options",
    ],
)
def test_the_sign_in_pages_passkey_posts_are_counted_by_address(path: str) -> None:
    route = routes.match("POST", path)
    assert route is not None
    assert (route.upstream, route.access) == ("auth", Access.PUBLIC)
    assert route.counted is routes.Counted.ADDRESS
