"""The merged API document, Swagger UI assets, metrics and health."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import httpx
from common.revocation import mark_session_revoked
from common.testing import TokenFactory
from redis.asyncio import Redis
from starlette.middleware.gzip import GZipMiddleware

from .support import REDIS_URL, GatewayFactory, bearer, unique_id
from .upstream import Served, echo_app


async def test_merged_openapi_has_public_paths_only(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert "/api/v1/auth/login" in document["paths"]
    assert not any(path.startswith("/internal") for path in document["paths"])
    flows = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/login"


async def test_swagger_ui_is_served_locally(gateway: httpx.AsyncClient) -> None:
    page = await gateway.get("/api/docs")
    assert page.status_code == 200
    assert "/api/docs/assets/swagger-ui-bundle.js" in page.text
    asset = await gateway.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert (await gateway.get("/api/docs/assets/..%2F..%2Fsettings.py")).status_code == 404
    assert (await gateway.get("/api/docs/assets/index.html")).status_code == 404


async def test_docs_are_off_in_production(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        environment="production", internal_client_secret="a-real-secret-of-enough-length"
    )
    assert (await gateway.get("/api/docs")).status_code == 404
    assert (await gateway.get("/api/openapi.json")).status_code == 404
    assert (await gateway.get("/docs")).status_code == 404
    assert (await gateway.get("/openapi.json")).status_code == 404


async def test_health_ready_and_metrics(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/health")).json() == {"status": "ok"}
    assert (await gateway.get("/ready")).status_code == 200
    await gateway.post("/api/v1/users/", json={})
    metrics = (await gateway.get("/metrics")).text
    assert (
        'gatehouse_gateway_requests_total{route="users.register",status="200",upstream="users"}'
        in metrics
    )
    assert "gatehouse_gateway_request_duration_seconds_bucket" in metrics


async def test_the_document_needs_one_answering_service(
    make_gateway: GatewayFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway()
    await upstreams["users"].stop()
    await upstreams["auth"].stop()
    down = await gateway.get("/api/openapi.json")
    assert down.status_code == 503
    assert down.headers["content-type"].startswith("application/problem+json")
    await upstreams["auth"].start()
    partial = (await gateway.get("/api/openapi.json")).json()
    assert "/api/v1/auth/login" in partial["paths"]
    await upstreams["users"].start()


def sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_limited_and_revoked_requests_are_counted(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(gateway_rate_limit="1/hour")
    session = unique_id()
    limited = 'gatehouse_gateway_rate_limited_total{limit="general"}'
    revoked = "gatehouse_gateway_revoked_total"
    before = (await gateway.get("/metrics")).text
    await gateway.post("/api/v1/users/", json={})
    assert (await gateway.post("/api/v1/users/", json={})).status_code == 429
    redis = Redis.from_url(REDIS_URL)
    try:
        await mark_session_revoked(redis, session)
    finally:
        await redis.aclose()
    token = bearer(tokens, session_id=session)
    assert (await gateway.get("/api/v1/users/me", headers=token)).status_code == 401
    after = (await gateway.get("/metrics")).text
    assert sample(after, limited) == sample(before, limited) + 1
    assert sample(after, revoked) == sample(before, revoked) + 1


async def test_the_gateway_has_no_document_of_its_own(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/openapi.json")).status_code == 404
    redirect = await gateway.get("/docs")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "/api/docs"


async def test_a_compressed_api_document_is_merged(make_gateway: GatewayFactory) -> None:
    """A service behind a compressing proxy: its document comes gzip-encoded."""
    app = echo_app("auth")
    app.add_middleware(GZipMiddleware, minimum_size=1)
    compressing = Served(app)
    await compressing.start()
    try:
        gateway = await make_gateway(auth_url=compressing.url)
        response = await gateway.get("/api/openapi.json")
        assert response.status_code == 200
        assert "/api/v1/auth/login" in response.json()["paths"]
    finally:
        await compressing.stop()


def test_the_gateway_needs_no_aiohttp() -> None:
    """httpx for its own calls (JWKS, API documents), its own client for proxied requests."""
    gateway = Path(__file__).resolve().parents[1]
    project = tomllib.loads((gateway / "pyproject.toml").read_text())
    assert not [dep for dep in project["project"]["dependencies"] if dep.startswith("aiohttp")]
    for source in (gateway / "src" / "gateway").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [name for name in names if name.split(".")[0] == "aiohttp"], source.name
