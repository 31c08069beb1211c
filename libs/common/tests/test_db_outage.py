"""A database the service cannot reach is a 503 with `Retry-After` (API.md §3), on FastAPI's
routes and the hot ones alike, and the pool recovers once it is back; a statement the server
refuses stays what it was. The outage is real: a relay of the test's own between the pool and
PostgreSQL, cut, stalled or frozen, and restored."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from common import cli
from common.app import create_service_app
from common.db import (
    Database,
    DatabaseDep,
    DatabaseNotAnswering,
    DatabaseUnreachable,
    DbDep,
    ReadDbDep,
    _connect_or_unreachable,
    database_unreachable,
    make_engine,
)
from common.hot import HotRoute
from common.settings import ServiceSettings
from common.state import keep_state
from common.testing import TcpRelay, assert_database_unavailable, without_hot_routes
from fastapi import FastAPI
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .sample_models import Item

ROWS = select(Item.name).where(Item.id == bindparam("item_id"))


@pytest.fixture
async def relay(sample_database_url: str) -> AsyncIterator[TcpRelay]:
    async with TcpRelay(sample_database_url) as relay:
        yield relay


@pytest.fixture
async def database(relay: TcpRelay) -> AsyncIterator[Database]:
    database = Database(relay.url, pool_size=2, max_overflow=0)
    yield database
    await database.dispose()


async def raised(action: Callable[[], Awaitable[object]]) -> BaseException:
    with pytest.raises(Exception) as caught:
        await action()
    return caught.value


async def one_statement(database: Database) -> None:
    async with database.sessionmaker() as db:
        await db.execute(text("SELECT 1"))


async def test_connection_failures_are_outages(database: Database, relay: TcpRelay) -> None:
    await one_statement(database)  # the pool holds a connection through the relay
    async with database.sessionmaker() as db:
        await db.execute(text("SELECT 1"))
        await relay.cut()
        dropped = await raised(lambda: db.execute(text("SELECT 2")))  # mid-transaction
    refused = await raised(lambda: one_statement(database))
    refused_raw = await raised(lambda: database.read_rows(ROWS, {"item_id": 1}))
    await relay.restore()

    for failure in (dropped, refused, refused_raw):
        assert database_unreachable(failure), repr(failure)


async def test_pool_timeout_is_an_outage(relay: TcpRelay) -> None:
    engine = create_async_engine(relay.url, pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            failure = await raised(engine.connect)
    finally:
        await engine.dispose()
    assert database_unreachable(failure), repr(failure)


async def test_refused_statements_are_not_outages(database: Database) -> None:
    async def run(sql: str) -> None:
        async with database.sessionmaker() as db, db.begin():
            await db.execute(text(sql))

    failures = [
        await raised(lambda: run("SELEC 1")),
        await raised(lambda: run("SELECT 1 / 0")),
        await raised(lambda: run("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'a')")),
        # A parameter of the wrong type, raised by asyncpg itself (its DataError).
        await raised(lambda: database.read_rows(ROWS, {"item_id": "one"})),
    ]
    for failure in failures:
        assert not database_unreachable(failure), repr(failure)


async def read_item(database: Database, item_id: int) -> Response:
    rows: Sequence[Mapping[Any, Any]] = await database.read_rows(ROWS, {"item_id": item_id})
    return JSONResponse({"names": [row["name"] for row in rows]})


def build_app(database: Database) -> Any:
    app = create_service_app("sample", ServiceSettings())
    keep_state(app, None, database=database)

    @app.get("/rows")
    async def rows(database: DatabaseDep) -> Response:
        return await read_item(database, 1)

    @app.post("/items", status_code=201)
    async def add(db: DbDep) -> dict[str, str]:
        await db.execute(insert(Item).values(name="outage-item"))
        return {"name": "outage-item"}

    @app.get("/items")
    async def count(db: ReadDbDep) -> dict[str, int]:
        return {"items": len((await db.execute(select(Item.id))).all())}

    @app.get("/broken")
    async def broken(db: ReadDbDep) -> dict[str, int]:
        await db.execute(text("SELEC 1"))
        return {}

    async def hot_rows(request: Request) -> Response:
        return await read_item(database, 1)

    route = next(r for r in app.routes if getattr(r, "path", None) == "/rows")
    app.user_middleware.append(
        Middleware(HotRoute, method="GET", path="/hot", route=route, answer=hot_rows)
    )
    return app


async def test_an_outage_answers_503_and_the_pool_recovers(
    database: Database, relay: TcpRelay, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items")).status_code == 200
        assert (await client.get("/hot")).status_code == 200
        await relay.cut()
        caplog.clear()
        requests = [("GET", "/items"), ("GET", "/rows"), ("GET", "/hot"), ("POST", "/items")]
        for method, path in requests:
            assert_database_unavailable(await client.request(method, path), path)
        # One line each, at error level, without a traceback.
        outages = [r for r in caplog.records if r.name == "gatehouse.db" and r.levelname == "ERROR"]
        assert len(outages) == len(requests)
        assert all(r.exc_info is None for r in outages)

        await relay.restore()
        # Not an outage: a statement the server refuses is still a bug (500).
        assert (await client.get("/broken")).status_code == 500
        assert (await client.get("/items")).status_code == 200
        assert (await client.get("/hot")).status_code == 200
        assert (await client.get("/rows")).status_code == 200
        created = await client.post("/items")
        assert created.status_code == 201, created.text
        async with database.sessionmaker() as db, db.begin():
            await db.execute(text("DELETE FROM items WHERE name = 'outage-item'"))


async def test_a_hot_route_outage_answers_as_its_fastapi_route(
    database: Database, relay: TcpRelay
) -> None:
    app = build_app(database)
    hot = [m for m in app.user_middleware if m.cls is HotRoute]
    hot[0].kwargs["path"] = "/rows"  # the hot route in front of its FastAPI route
    await relay.cut()
    answers = []
    for asgi in (app, without_hot_routes(app)):
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers.append(await client.get("/rows"))
    hot_answer, fastapi_answer = answers
    assert hot_answer.status_code == fastapi_answer.status_code == 503
    assert hot_answer.content == fastapi_answer.content
    assert hot_answer.headers["retry-after"] == fastapi_answer.headers["retry-after"] == "1"


async def test_a_database_that_never_answers_is_an_outage_after_the_connect_timeout(
    relay: TcpRelay,
) -> None:
    """A hung database (or one behind a black hole) takes connections and never answers: each
    new connection is given up after the connect timeout, not asyncpg's 60 seconds, and the
    request answers 503 as for a refused connection; once the database answers, so do routes."""
    # Long enough for a connect through the restored relay on a loaded machine, and short of 60.
    database = Database(relay.url, pool_size=1, max_overflow=0, connect_timeout=1.0)
    try:
        await relay.stall()
        failure = await raised(lambda: one_statement(database))
        assert isinstance(failure, DatabaseUnreachable), repr(failure)
        assert isinstance(failure.__cause__, TimeoutError)
        assert database_unreachable(failure)

        app = build_app(database)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async with asyncio.timeout(10):  # three connects of 1 s each, never 60 s
                for method, path in [("GET", "/items"), ("GET", "/hot"), ("POST", "/items")]:
                    assert_database_unavailable(await client.request(method, path), path)
            await relay.restore()
            assert (await client.get("/items")).status_code == 200
            assert (await client.get("/hot")).status_code == 200
    finally:
        await database.dispose()


class FailingDialect:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [TimeoutError(), OSError(errno.EHOSTUNREACH, "No route to host")],
    ids=["timeout", "no-route"],
)
def test_connect_failures_other_than_refusals_are_raised_as_unreachable(
    error: BaseException,
) -> None:
    """No route to a database host cannot be made on loopback: the driver's connect is faked."""
    with pytest.raises(DatabaseUnreachable) as caught:
        _connect_or_unreachable(FailingDialect(error), None, (), {})  # type: ignore[arg-type]
    assert caught.value.__cause__ is error
    assert database_unreachable(caught.value)


@pytest.mark.parametrize(
    "error", [ConnectionRefusedError(), ValueError("bad dsn")], ids=["refused", "not-network"]
)
def test_other_connect_failures_go_on_as_they_are(error: BaseException) -> None:
    with pytest.raises(type(error)) as caught:
        _connect_or_unreachable(FailingDialect(error), None, (), {})  # type: ignore[arg-type]
    assert caught.value is error


async def test_a_database_that_stops_answering_is_an_outage_after_the_statement_timeout(
    relay: TcpRelay,
) -> None:
    """A database that stops answering on the connections it holds (a server stopped, a network
    partition): a statement is given up after the statement timeout, on FastAPI's routes and the
    hot ones, its connection dropped (its state is unknown) rather than handed out again; new
    connections meet the connect timeout; once the database answers again, so do routes."""
    database = Database(
        relay.url, pool_size=1, max_overflow=0, connect_timeout=1.0, statement_timeout=0.2
    )
    try:
        app = build_app(database)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/items")).status_code == 200  # the pool's one connection
            relay.freeze()
            async with asyncio.timeout(10):  # never the 30 s of the gateway's read timeout
                failure = await raised(lambda: one_statement(database))
            assert isinstance(failure, DatabaseNotAnswering), repr(failure)
            assert isinstance(failure.__cause__, TimeoutError)
            assert database_unreachable(failure)
            relay.thaw()
            assert (await client.get("/hot")).status_code == 200  # on a new connection
            relay.freeze()
            async with asyncio.timeout(10):
                failure = await raised(lambda: database.read_rows(ROWS, {"item_id": 1}))
            assert isinstance(failure, DatabaseNotAnswering), repr(failure)
            assert database_unreachable(failure)

            relay.thaw()
            for method, path in [("GET", "/items"), ("GET", "/hot"), ("POST", "/items")]:
                assert (await client.get("/items")).status_code == 200  # a live connection
                relay.freeze()
                async with asyncio.timeout(10):
                    assert_database_unavailable(await client.request(method, path), path)
                relay.thaw()
            assert (await client.get("/items")).status_code == 200
            assert (await client.get("/hot")).status_code == 200
            async with database.sessionmaker() as db, db.begin():
                await db.execute(text("DELETE FROM items WHERE name = 'outage-item'"))
    finally:
        await database.dispose()


async def backend(db: Any) -> int:
    pid: int = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def test_a_statement_over_the_statement_timeout_is_cancelled_by_the_server(
    sample_database_url: str,
) -> None:
    """A statement that runs too long on a live server (a lock it waits for, a plan gone wrong)
    is cancelled by the server, which goes on serving the connection: the request is an outage
    (503), its transaction rolled back, and the next one runs on the same connection."""
    database = Database(sample_database_url, pool_size=1, max_overflow=0, statement_timeout=0.2)
    try:
        app: FastAPI = build_app(database)

        @app.post("/slow")
        async def slow(db: DbDep) -> dict[str, str]:
            await db.execute(insert(Item).values(name="slow-item"))
            await db.execute(text("SELECT pg_sleep(5)"))
            return {}

        async with database.sessionmaker() as db:
            before = await backend(db)
            failure = await raised(lambda: db.execute(text("SELECT pg_sleep(5)")))
            assert isinstance(failure.__cause__.__cause__, asyncpg.QueryCanceledError)  # type: ignore[union-attr]
            assert database_unreachable(failure)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async with asyncio.timeout(10):
                assert_database_unavailable(await client.post("/slow"), "/slow")
        async with database.sessionmaker() as db:
            assert await backend(db) == before
            rows = await db.execute(select(Item.id).where(Item.name == "slow-item"))
            assert rows.all() == []
    finally:
        await database.dispose()


async def test_migrations_have_no_statement_timeout(
    sample_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's statements are cut at the statement timeout, on the server and in the client;
    a migration (an index built on a large table) is not."""
    settings = []
    for options in ({}, {"statement_timeout": None}):
        engine = make_engine(sample_database_url, **options)  # type: ignore[arg-type]
        try:
            async with engine.connect() as connection:
                shown = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
                driver = (await connection.get_raw_connection()).driver_connection
                settings.append((shown, driver._config.command_timeout))  # type: ignore[union-attr]
        finally:
            await engine.dispose()
    # The server's and the client's (a second more: a live server's cancel comes first).
    assert settings == [("5s", 6.0), ("0", None)]

    made: list[dict[str, Any]] = []

    def recording(url: str, **options: Any) -> Any:
        made.append(options)
        return make_engine(url, **options)

    async def no_upgrade(*_: object) -> None:
        return None

    monkeypatch.setattr("common.cli.make_engine", recording)
    monkeypatch.setattr(cli, "upgrade", no_upgrade)
    await cli.migrate_database(sample_database_url, Path("unused"))
    assert made == [{"statement_timeout": None}]
