"""The request database dependency owns the transaction; migrations run from code; timestamps
come back as aware UTC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from common.app import create_service_app
from common.db import (
    CommitThenAnswer,
    Database,
    DbDep,
    ReadDbDep,
    UTCDateTime,
    _replace_closed,
    after_commit,
    new_metadata,
)
from common.errors import Conflict
from common.settings import ServiceSettings
from common.state import keep_state
from sqlalchemy import Column, Integer, Table, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .sample_models import Item


def build_app(
    database: Database, announced: list[tuple[str, int]] | None = None
) -> httpx.AsyncClient:
    app = create_service_app("sample", ServiceSettings())
    keep_state(app, None, database=database)

    @app.post("/items/{name}", status_code=201)
    async def add(name: str, db: DbDep) -> dict[str, str]:
        db.add(Item(name=name))
        await db.flush()
        if name.startswith("fail"):
            raise Conflict("rolled back")
        return {"name": name}

    @app.post("/decided/{name}", status_code=201)
    async def add_then_refuse(name: str, db: DbDep) -> dict[str, str]:
        db.add(Item(name=name))
        await db.flush()
        raise CommitThenAnswer(Conflict("kept, and refused"))

    @app.post("/announced/{name}", status_code=201)
    async def add_and_announce(name: str, db: DbDep) -> dict[str, str]:
        async def announce() -> None:
            # Runs after the commit: another connection already sees the row.
            assert announced is not None
            announced.append((name, await count(database.engine, name)))
            if name.startswith("broken"):
                raise RuntimeError("the other service is down")

        db.add(Item(name=name))
        await db.flush()
        after_commit(db, announce)
        if name.startswith("fail"):
            raise Conflict("rolled back")
        return {"name": name}

    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def count(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(select(func.count()).where(Item.name == name))
        return int(result.scalar_one())


@pytest.fixture
async def database(sample_database_url: str) -> AsyncIterator[Database]:
    database = Database(sample_database_url)
    yield database
    await database.dispose()


async def test_success_is_committed_before_the_response(
    database: Database, sample_engine: AsyncEngine
) -> None:
    async with build_app(database) as client:
        assert (await client.post("/items/kept")).status_code == 201
    assert await count(sample_engine, "kept") == 1


async def test_error_rolls_the_whole_request_back(
    database: Database, sample_engine: AsyncEngine
) -> None:
    async with build_app(database) as client:
        assert (await client.post("/items/fail-1")).status_code == 409
    assert await count(sample_engine, "fail-1") == 0


async def test_commit_then_answer_keeps_the_change_and_answers_the_error(
    database: Database, sample_engine: AsyncEngine
) -> None:
    async with build_app(database) as client:
        answer = await client.post("/decided/refused-1")
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "kept, and refused"
    assert await count(sample_engine, "refused-1") == 1


async def test_migrations_created_the_schema(sample_engine: AsyncEngine) -> None:
    async with sample_engine.connect() as connection:
        version = await connection.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "0001"


async def test_ping_answers(database: Database) -> None:
    await database.ping()


STAMPS = Table(
    "utc_stamps",
    new_metadata(),
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime),
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_utc_datetime_comes_back_aware_utc(
    backend: str, sample_database_url: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}" if backend == "sqlite" else None
    database = Database(url or sample_database_url)
    written = {
        1: datetime(2026, 12, 1, 23, 30, tzinfo=UTC),
        2: datetime(2026, 12, 2, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # 23:30 UTC
        3: datetime(2026, 12, 1, 23, 30),  # naive: taken as UTC
    }
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(STAMPS.metadata.create_all)
            for key, moment in written.items():
                await connection.execute(insert(STAMPS).values(id=key, at=moment))
            read = (await connection.execute(select(STAMPS.c.at).order_by(STAMPS.c.id))).scalars()
            moments = list(read)
            await connection.run_sync(STAMPS.metadata.drop_all)
    finally:
        await database.dispose()
    assert moments == [datetime(2026, 12, 1, 23, 30, tzinfo=UTC)] * 3
    assert all(moment.utcoffset() == timedelta(0) for moment in moments)


async def test_after_commit_calls_run_after_the_commit_and_never_after_a_rollback(
    database: Database,
) -> None:
    announced: list[tuple[str, int]] = []
    async with build_app(database, announced) as client:
        assert (await client.post("/announced/told")).status_code == 201
        assert (await client.post("/announced/fail-2")).status_code == 409
        # A failing call is logged; the change is committed and the client told so.
        assert (await client.post("/announced/broken-1")).status_code == 201
    assert announced == [("told", 1), ("broken-1", 1)]


async def backend_pid(db: AsyncSession) -> int:
    return int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def connection_state(engine: AsyncEngine, db: AsyncSession) -> str:
    """What PostgreSQL says `db`'s connection is doing, asked over another connection."""
    return await backend_state(engine, await backend_pid(db))


async def terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def backend_state(engine: AsyncEngine, pid: int) -> str:
    """What that backend is doing: `idle`, `idle in transaction`, …"""
    async with engine.connect() as connection:
        state = await connection.execute(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        return str(state.scalar_one())


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    sample_database_url: str, sample_engine: AsyncEngine
) -> None:
    """No pre-ping: a connection whose backend was terminated is known closed and not handed out."""
    database = Database(sample_database_url, pool_size=1, max_overflow=0)
    try:
        async with database.sessionmaker() as db:
            first = await backend_pid(db)
            driver = (await (await db.connection()).get_raw_connection()).driver_connection
            assert driver is not None
        await terminate(sample_engine, first)
        for _ in range(500):  # asyncpg reads the server's goodbye within a few loop turns
            if driver.is_closed():
                break
            await asyncio.sleep(0.01)
        # A bare connection (no db, so no retry): the pool handed out a live one.
        async with database.engine.connect() as connection:
            pid = await connection.execute(text("SELECT pg_backend_pid()"))
            assert pid.scalar_one() != first
    finally:
        await database.dispose()


@pytest.fixture
async def unwatched_connection(sample_database_url: str) -> AsyncIterator[Database]:
    """One pooled connection and the checkout check off: the pool hands out a connection the
    server has closed, as it would one that died between the check and the first statement."""
    database = Database(sample_database_url, pool_size=1, max_overflow=0)
    event.remove(database.engine.sync_engine.pool, "checkout", _replace_closed)
    yield database
    await database.dispose()


async def test_a_first_statement_on_a_dead_connection_runs_once_more_on_a_new_one(
    unwatched_connection: Database, sample_engine: AsyncEngine
) -> None:
    """A connection dead without the pool knowing (the checkout check off): the session's first
    statement fails on it, the connection is invalidated, and the statement runs on a new one."""
    database = unwatched_connection
    async with database.sessionmaker() as db:
        first = await backend_pid(db)
    await terminate(sample_engine, first)
    async with database.sessionmaker() as db:
        assert await backend_pid(db) != first
        # Later statements are not retried; this one runs on the new connection.
        assert (await db.execute(text("SELECT 1"))).scalar_one() == 1


async def test_a_statement_inside_a_transaction_is_not_retried(
    unwatched_connection: Database, sample_engine: AsyncEngine
) -> None:
    database = unwatched_connection
    async with database.sessionmaker() as db:
        pid = await backend_pid(db)
        await terminate(sample_engine, pid)
        with pytest.raises(DBAPIError) as raised:
            await db.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated


async def test_unflushed_changes_are_not_retried_away(
    unwatched_connection: Database, sample_engine: AsyncEngine
) -> None:
    """A first statement that would flush pending objects fails rather than dropping them."""
    database = unwatched_connection
    async with database.sessionmaker() as db:
        pid = await backend_pid(db)
    await terminate(sample_engine, pid)
    async with database.sessionmaker() as db:
        db.add(Item(name="pending-on-a-dead-connection"))
        with pytest.raises(DBAPIError):
            await db.execute(select(func.count()).select_from(Item))

    assert await count(sample_engine, "pending-on-a-dead-connection") == 0


async def test_a_read_db_holds_no_transaction(
    database: Database, sample_engine: AsyncEngine
) -> None:
    """After a read, its connection is idle, not idle in a transaction: no BEGIN was sent."""
    async with database.read_sessionmaker() as db:
        assert await connection_state(sample_engine, db) == "idle"
    async with database.sessionmaker() as db:
        assert await connection_state(sample_engine, db) == "idle in transaction"


async def test_read_route_answers_after_the_database_ended_its_connections(
    sample_database_url: str, sample_engine: AsyncEngine
) -> None:
    """Every pooled connection terminated (as a Postgres restart does): the next requests answer."""
    database = Database(sample_database_url, pool_size=2, max_overflow=0)
    app = create_service_app("sample", ServiceSettings())
    keep_state(app, None, database=database)

    @app.get("/pid")
    async def pid(db: ReadDbDep) -> int:
        return await backend_pid(db)

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = {(await client.get("/pid")).json() for _ in range(3)}
            for old in before:
                await terminate(sample_engine, old)
            answers = [await client.get("/pid") for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4
        assert before.isdisjoint(a.json() for a in answers)
    finally:
        await database.dispose()


PID = select(func.pg_backend_pid().label("pid"))


async def test_read_rows_answers_mappings_outside_any_transaction(
    database: Database, sample_engine: AsyncEngine
) -> None:
    """The driver's rows by column name, the ORM's values; the connection left idle (no BEGIN)."""
    async with database.sessionmaker() as db:
        db.add(Item(name="read-raw"))
        await db.commit()
    statement = select(Item.name, func.now().label("at")).where(Item.name == "read-raw")
    rows = await database.read_rows(statement, {"name_1": "read-raw"})
    assert [row["name"] for row in rows] == ["read-raw"]
    assert rows[0]["at"].utcoffset() == timedelta(0)
    pid = (await database.read_rows(PID, {}))[0]["pid"]
    assert await backend_state(sample_engine, pid) == "idle"


async def test_read_rows_on_a_dead_connection_runs_once_more_on_a_new_one(
    sample_database_url: str, sample_engine: AsyncEngine
) -> None:
    """As a session's first statement (the checkout check off): the dead connection is thrown
    away and the read runs on a new one."""
    database = Database(sample_database_url, pool_size=1, max_overflow=0)
    event.remove(database.engine.sync_engine.pool, "checkout", _replace_closed)
    try:
        first = (await database.read_rows(PID, {}))[0]["pid"]
        await terminate(sample_engine, first)
        second = (await database.read_rows(PID, {}))[0]["pid"]
        assert second != first
        assert (await database.read_rows(PID, {}))[0]["pid"] == second
    finally:
        await database.dispose()
