"""The request session dependency owns the transaction; migrations run from code."""

from __future__ import annotations

import httpx
import pytest
from common.app import create_service_app
from common.db import Database, SessionDep
from common.errors import Conflict
from common.settings import ServiceSettings
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from .sample_models import Item


def build_app(database: Database) -> httpx.AsyncClient:
    app = create_service_app("sample", ServiceSettings())
    app.state.db = database

    @app.post("/items/{name}", status_code=201)
    async def add(name: str, session: SessionDep) -> dict[str, str]:
        session.add(Item(name=name))
        await session.flush()
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
async def database(sample_database_url: str) -> Database:
    return Database(sample_database_url)


async def test_success_is_committed_before_the_response(
    database: Database, sample_engine: AsyncEngine
) -> None:
    async with build_app(database) as client:
        assert (await client.post("/items/kept")).status_code == 201
    assert await count(sample_engine, "kept") == 1
    await database.dispose()


async def test_error_rolls_the_whole_request_back(
    database: Database, sample_engine: AsyncEngine
) -> None:
    async with build_app(database) as client:
        assert (await client.post("/items/fail-1")).status_code == 409
    assert await count(sample_engine, "fail-1") == 0
    await database.dispose()


async def test_migrations_created_the_schema(sample_engine: AsyncEngine) -> None:
    async with sample_engine.connect() as connection:
        version = await connection.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "0001"


async def test_ping_answers(database: Database) -> None:
    await database.ping()
    await database.dispose()
