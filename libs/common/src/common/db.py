"""Async database access: one engine per service, one transaction per request.

`Database` is built in the service's lifespan and kept on `app.state.db`. The request dependency
`get_db` (`DbDep`) owns the transaction: it commits when the endpoint returns and rolls back when
it raises, before the response is sent (`scope="function"`), so a client never sees a success that
was not committed. Services and repositories only `flush()`. "db" is always this database
session; "session" is a login session.

One refusal is a decision that must outlive the request: a reused refresh token revokes its whole
session, and only then is the client told no. The endpoint raises `CommitThenAnswer(error)`:
`get_db` commits what was done and answers with `error`. Every other exception rolls back.

Timestamps are `UTCDateTime` columns: aware UTC datetimes in and out, on PostgreSQL and SQLite.

A service that must tell another service about a change once it is durable registers the call
with `after_commit`: `get_db` awaits it after the commit and still before the response, and
never after a rollback. Such a call cannot undo the commit, so its failure is logged, not raised:
the caller arranges its own backup (an outbox event).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Dialect, MetaData, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger("gatehouse.db")
AFTER_COMMIT = "gatehouse.after_commit"

# Constraint names stable across PostgreSQL and SQLite, so Alembic can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every service's models (each service has its own metadata via subclassing)."""

    __abstract__ = True


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back an aware UTC datetime.

    PostgreSQL's `timestamptz` answers aware values already; SQLite (embedded mode) keeps no zone
    and answers naive ones, which are UTC because only UTC is written: values are converted to UTC
    on the way in (a naive one is taken as UTC). So code compares a column with `utcnow()` as it
    is, without converting at each call site. The DDL is `DateTime(timezone=True)`'s.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _utc(value)


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "gatehouse"}},
    )


class Database:
    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def after_commit(db: AsyncSession, call: Callable[[], Awaitable[None]]) -> None:
    """Await `call` once this request's transaction has committed (see the module docstring)."""
    db.info.setdefault(AFTER_COMMIT, []).append(call)


async def run_after_commit(db: AsyncSession) -> None:
    calls: list[Callable[[], Awaitable[None]]] = db.info.pop(AFTER_COMMIT, [])
    for call in calls:
        try:
            await call()
        except Exception:
            logger.exception("a call after the commit failed")


class CommitThenAnswer(Exception):
    """Commit what the request did, then answer with `error` (see the module docstring).

    Only `get_db` understands it: raise it from an endpoint that takes `DbDep`.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.sessionmaker() as db:
        try:
            yield db
        except CommitThenAnswer as decided:
            await db.commit()
            await run_after_commit(db)
            raise decided.error from decided.__cause__
        except BaseException:
            db.info.pop(AFTER_COMMIT, None)
            await db.rollback()
            raise
        else:
            await db.commit()
            await run_after_commit(db)


DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
