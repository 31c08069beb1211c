"""Headers in and out: identity headers stripped, forwarding headers set, security headers added,
CORS only for configured origins, HSTS only over HTTPS."""

from __future__ import annotations

import httpx
from common.testing import TokenFactory

from .support import GatewayClient, GatewayFactory, bearer, unique_ip

ME = "/api/v1/users/me"


async def test_identity_and_hop_by_hop_headers_are_stripped(
    gateway: GatewayClient, tokens: TokenFactory
) -> None:
    response = await gateway.get(
        ME,
        headers={
            **bearer(tokens),
            "X-User-Id": "admin",
            "X-User-Roles": "admin",
            "X-Internal-Token": "x",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=6.6.6.6",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop",
            "X-Request-ID": "req-12345678",
        },
    )
    seen = response.json()["headers"]
    for name in ("x-user-id", "x-user-roles", "x-internal-token", "forwarded", "x-secret"):
        assert name not in seen, name
    assert seen["x-forwarded-for"] == gateway.source  # the socket peer, not the claim
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-request-id"] == "req-12345678"
    assert response.headers["x-request-id"] == "req-12345678"


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    trusting = await make_gateway(gateway_trusted_proxies=["127.0.0.0/8"])
    response = await trusting.get(
        ME, headers={**bearer(tokens), "X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    )
    # The right-most untrusted hop is the client; what the client wrote to its left is not.
    assert response.json()["headers"]["x-forwarded-for"] == "203.0.113.7"
    garbage = await trusting.get(ME, headers={**bearer(tokens), "X-Forwarded-For": "not-an-ip"})
    assert garbage.json()["headers"]["x-forwarded-for"] == trusting.source


async def test_security_headers_and_no_banner(gateway: httpx.AsyncClient) -> None:
    for path in ("/api/v1/users/", "/health", "/nothing"):
        response = await gateway.post(path) if path.endswith("/") else await gateway.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "server" not in response.headers
        assert "x-powered-by" not in response.headers
        assert "strict-transport-security" not in response.headers


async def test_hsts_over_https_from_a_trusted_proxy(make_gateway: GatewayFactory) -> None:
    trusting = await make_gateway(gateway_trusted_proxies=["127.0.0.0/8"])
    response = await trusting.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_only_for_configured_origins(gateway: httpx.AsyncClient) -> None:
    preflight = await gateway.options(
        ME,
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    evil = await gateway.options(
        ME, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in evil.headers
    simple = await gateway.post("/api/v1/users/", headers={"Origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "*" not in simple.headers["access-control-allow-origin"]


async def test_spoofed_forwarded_for_does_not_escape_the_ip_limit(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(gateway_rate_limit="3/hour")
    statuses = [
        (
            await gateway.post(
                "/api/v1/users/", json={}, headers={"X-Forwarded-For": f"10.0.0.{i}"}
            )
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]


async def test_clients_behind_a_trusted_proxy_are_limited_apart(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        gateway_rate_limit="2/hour", gateway_trusted_proxies=["127.0.0.0/8"]
    )

    async def from_client(address: str) -> int:
        response = await gateway.post(
            "/api/v1/users/", json={}, headers={"X-Forwarded-For": address}
        )
        return response.status_code

    first, second = unique_ip(), unique_ip()
    assert [await from_client(first) for _ in range(3)] == [200, 200, 429]
    assert await from_client(second) == 200
    # A client-written left part cannot pick another bucket: the right-most hop is the client.
    assert await from_client(f"{unique_ip()}, {first}") == 429


async def test_malformed_request_ids_are_replaced(
    gateway: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await gateway.get(
        ME, headers={**bearer(tokens), "X-Request-ID": "bad id;<script>" * 20}
    )
    seen = response.json()["headers"]["x-request-id"]
    assert seen == response.headers["x-request-id"]
    assert " " not in seen
    assert len(seen) <= 128
    fresh = await gateway.get(ME, headers=bearer(tokens))
    assert fresh.headers["x-request-id"] != seen


async def test_wildcard_cors_is_never_granted(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(cors_origins=["*"])
    response = await gateway.options(
        ME, headers={"Origin": "https://any.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in response.headers
    simple = await gateway.post("/api/v1/users/", headers={"Origin": "https://any.example"})
    assert "access-control-allow-origin" not in simple.headers


async def test_upstream_security_policy_is_kept(
    gateway: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await gateway.get(ME, headers=bearer(tokens))
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_forwarded_for_is_read_across_all_its_lines(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Several X-Forwarded-For lines are one list (RFC 9110 §5.3): the last line is nearest."""
    trusting = await make_gateway(gateway_trusted_proxies=["127.0.0.0/8"])
    response = await trusting.get(
        ME,
        headers=[
            ("Authorization", bearer(tokens)["Authorization"]),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    assert response.json()["headers"]["x-forwarded-for"] == "203.0.113.9"


async def test_ipv6_clients_are_limited_by_their_slash_64(make_gateway: GatewayFactory) -> None:
    trusting = await make_gateway(
        gateway_trusted_proxies=["127.0.0.0/8"], gateway_rate_limit="2/hour"
    )
    octets = unique_ip().split(".")
    prefix = f"2001:db8:{int(octets[2]):x}:{int(octets[3]):x}"
    statuses = [
        (
            await trusting.post(
                "/api/v1/users/", json={}, headers={"X-Forwarded-For": f"{prefix}::{host}"}
            )
        ).status_code
        for host in ("1", "2", "ffff:1:2")
    ]
    assert statuses == [200, 200, 429]
    other = await trusting.post(
        "/api/v1/users/", json={}, headers={"X-Forwarded-For": f"{prefix}1::1"}
    )
    assert other.status_code == 200
