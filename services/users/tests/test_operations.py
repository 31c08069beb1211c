"""What operators and the gateway read: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager
from common.rabbitmq import RabbitBroker
from common.tokens import JwksCache
from users.main import create_app

from .support import UsersHarness, users_settings


async def test_health_ready_and_metrics(users: UsersHarness) -> None:
    assert (await users.client.get("/health")).json() == {"status": "ok"}
    ready = await users.client.get("/ready")
    assert ready.status_code == 200, ready.text
    metrics = await users.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")


async def test_not_ready_without_its_database(users: UsersHarness) -> None:
    # Nothing listens on port 9 of loopback: the database is down from the start.
    settings = users_settings("postgresql+asyncpg://gatehouse:x@127.0.0.1:9/users")
    app = create_app(settings, broker=users.broker.client(), jwks=JwksCache(users.tokens.fetcher()))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://users.test"
        ) as client,
    ):
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert "database" in ready.text


async def test_ready_but_degraded_while_rabbitmq_is_down(
    users: UsersHarness, users_database_url: str
) -> None:
    """Registrations go on into the outbox without RabbitMQ: the replica must stay in the load
    balancer, reporting the broker as down."""
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:9/", connect_timeout=0.1)
    settings = users_settings(users_database_url)
    app = create_app(settings, broker=broker, jwks=JwksCache(users.tokens.fetcher()))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://users.test"
        ) as client,
    ):
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "broker": "BrokerUnavailable"},
        }


async def test_openapi_documents_the_public_routes_only(users: UsersHarness) -> None:
    document = (await users.client.get("/openapi.json")).json()
    paths = set(document["paths"])
    assert {
        "/api/v1/users/",
        "/api/v1/users/me",
        "/api/v1/users/me/password",
        "/api/v1/users/export.csv",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/roles",
    } <= paths
    assert not [path for path in paths if path.startswith("/internal")]
