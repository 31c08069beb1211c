"""Async database access: one engine per service, one transaction per request.

`Database` is built in the service's lifespan and kept with `common.state.keep_state`. The
request dependency `get_db` (`DbDep`) owns the transaction: it commits when the endpoint returns
and rolls back when it raises, before the response is sent (`scope="function"`), so a client never
sees a success that was not committed. Services and repositories only `flush()`. "db" is always
this database session; "session" is a login session.

One refusal is a decision that must outlive the request: a reused refresh token revokes its whole
session, and only then is the client told no. The endpoint raises `CommitThenAnswer(error)`:
`get_db` commits what was done and answers with `error`. Every other exception rolls back.

Timestamps are `UTCDateTime` columns: aware UTC datetimes in and out, on PostgreSQL and SQLite.

A service that must tell another service about a change once it is durable registers the call
with `after_commit`: `get_db` awaits it after the commit and still before the response, and
never after a rollback. Such a call cannot undo the commit, so its failure is logged, not raised:
the caller arranges its own backup (an outbox event).

A route that only reads takes `ReadDbDep`: a session outside any transaction (AUTOCOMMIT), so no
BEGIN and no COMMIT round trips. The hottest reads skip the session too: `Database.read_rows` runs
one Core statement on the pool's asyncpg connection itself (SQLite: through a read session).

A connection is not pinged before use (`pool_pre_ping` costs three round trips on asyncpg:
BEGIN, `;`, ROLLBACK). Instead a connection whose socket the server has closed (a restart,
`pg_terminate_backend`, an idle timeout) is replaced at checkout, which asyncpg knows without a
round trip; connections are recycled after 30 minutes; and a session's first statement that finds
its connection dead anyway (dropped without the socket closing) is run once more on a new one
(`FirstStatementRetry`).

A statement may run for `STATEMENT_TIMEOUT_SECONDS`: the server cancels one that runs longer (its
`statement_timeout`: the connection goes on), and the client gives up a second later on one the
server does not answer at all (a stopped server, a partition: asyncpg's `command_timeout`); that
connection's state is unknown, so it is dropped, never handed out again (`DatabaseNotAnswering`).
Migrations run without either.

When the database cannot be reached while a request is served (the server refuses or drops the
connection, a new connection takes longer than its connect timeout, the pool has none to give in
time, or a statement is cut at the statement timeout), the request is answered 503 with
`Retry-After` (`DatabaseUnavailable`), not 500:
`install_outage_handlers` renders it for FastAPI's routes, `common.hot.HotRoute` for its own.
`database_unreachable` says which failures those are, by type: a connection-level failure only,
never a statement the server refused.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, Request
from sqlalchemy import DateTime, Dialect, Executable, MetaData, Result, Select, event, exc, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn
from starlette.responses import Response

from common.errors import ServiceUnavailable
from common.state import required, runtime_of

if TYPE_CHECKING:
    from common.settings import ServiceSettings

logger = logging.getLogger("gatehouse.db")
AFTER_COMMIT = "gatehouse.after_commit"
# How long a new connection may take (TCP, TLS, authentication, startup) before it is given up.
CONNECT_TIMEOUT_SECONDS = 5.0
# How long a statement may run: the server cancels it then; the client waits a second more for a
# server that answers nothing (so a live server's cancel, which keeps the connection, comes first).
STATEMENT_TIMEOUT_SECONDS = 5.0
CLIENT_TIMEOUT_GRACE_SECONDS = 1.0

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


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At checkout: a connection the server has closed is replaced (the pool tries another when
    this raises `DisconnectionError`). asyncpg has read the socket's end already: no round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("the server closed this connection")


def make_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 0,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float | None = STATEMENT_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """At most `pool_size` connections, each kept open once opened: an overflow connection is
    closed as soon as it is returned while the pool is full, so bursts opened and closed one
    (TCP, the TLS offer, authentication, startup) per request — measured the largest cost of a
    `GET /users/me` under load.

    A new connection is given up after `connect_timeout` seconds (asyncpg's own default is 60:
    a database that accepts and never answers would hold each request that long), and that, or a
    connect failing with another OSError than a refusal (no route to the host), is raised as
    `DatabaseUnreachable`: an outage (503), not a bug (500).

    A statement is cut after `statement_timeout` seconds (None: never, for migrations), as the
    module docstring says."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    server_settings = {"application_name": "gatehouse"}
    command_timeout = None
    if statement_timeout is not None:
        server_settings["statement_timeout"] = str(round(statement_timeout * 1000))
        command_timeout = statement_timeout + CLIENT_TIMEOUT_GRACE_SECONDS
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={
            "server_settings": server_settings,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
        },
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unreachable)
    event.listen(engine.sync_engine, "handle_error", _drop_unanswered)
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed)
    return engine


class DatabaseUnreachable(ConnectionError):
    """A new connection to the database timed out or found no way to the server."""


def _connect_or_unreachable(
    dialect: Dialect, record: Any, cargs: Sequence[Any], cparams: dict[str, Any]
) -> Any:
    """The `do_connect` hook: the driver's connect, its timeout and its network failures (not
    a refusal or a reset, which are ConnectionErrors already) raised as `DatabaseUnreachable`."""
    try:
        return dialect.connect(*cargs, **cparams)
    except ConnectionError:
        raise
    except (TimeoutError, OSError) as error:
        raise DatabaseUnreachable(f"cannot connect to the database: {error!r}") from error


class DatabaseNotAnswering(ConnectionError):
    """A statement got no answer within the statement timeout; its connection was dropped."""

    def __init__(self) -> None:
        super().__init__("the database did not answer a statement in time")


def _drop_unanswered(context: ExceptionContext) -> BaseException | None:
    """The `handle_error` hook: a statement that timed out in the client (asyncpg's
    `command_timeout`; the server cancels a slow statement itself first) left its connection
    waiting on an answer that may yet come. The connection is closed at once, without asking the
    server, and invalidated; `DatabaseNotAnswering` is raised in the timeout's place."""
    if not isinstance(context.original_exception, TimeoutError) or context.connection is None:
        return None
    driver = context.connection.connection.driver_connection
    if driver is not None:
        driver.terminate()  # no goodbye to a server that answers nothing
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = False  # the others may be alive; checkout tells
    return DatabaseNotAnswering()


# What asyncpg raises running a statement on a connection the server has ended: closed under it,
# closed already, or still reading the server's goodbye ("another operation is in progress").
DEAD_CONNECTION = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


# What reaches a route, unwrapped, when the database cannot be reached: a connection refused or
# reset (SQLAlchemy does not wrap what the connect raises), a host name that does not resolve,
# asyncpg's own connection errors, the server refusing new connections (starting up, shutting
# down, full), and a statement cut at the statement timeout (`DatabaseNotAnswering` is a
# ConnectionError). Not asyncpg's `InterfaceError`: its `DataError` is a bad parameter, a bug.
UNREACHABLE = (
    ConnectionError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # The server cancelled a statement: its statement timeout, or an operator's cancel.
    asyncpg.QueryCanceledError,
)
# The classes a route's exception is looked up by (`install_outage_handlers`).
OUTAGE_CLASSES: tuple[type[Exception], ...] = (
    exc.DBAPIError,
    exc.TimeoutError,
    exc.DisconnectionError,
    *UNREACHABLE,
)
RETRY_AFTER_SECONDS = 1  # a restart or failover is seconds; the pools recover on their own


def database_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached (API.md §3: 503), rather than that
    it refused a statement (a constraint, a syntax error: what they were before, 4xx or 500)."""
    if isinstance(error, (exc.TimeoutError, exc.DisconnectionError)):
        return True  # the pool had no connection to give in time / could make none
    if isinstance(error, exc.DBAPIError):
        # The connection died under the statement (SQLAlchemy invalidated it), or the driver's
        # error behind SQLAlchemy's is one of the unreachable ones.
        return error.connection_invalidated or isinstance(
            getattr(error.orig, "__cause__", None), UNREACHABLE
        )
    return isinstance(error, UNREACHABLE)


class DatabaseUnavailable(ServiceUnavailable):
    """503 + `Retry-After`: the database could not be reached. The body names nothing internal
    (no host, no statement); the log line names the failure's class."""

    def __init__(self) -> None:
        super().__init__(
            "The database is unavailable; retry later.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def outage_answer(error: BaseException, path: str) -> DatabaseUnavailable | None:
    """The 503 for `error` when it is a database outage, logged as one line without a
    traceback (a flood of them while the database is down must not flood the log); None for any
    other error, which goes on as before."""
    if not database_unreachable(error):
        return None
    logger.error(
        "the database is unavailable (%s); answered 503", type(error).__name__, extra={"path": path}
    )
    return DatabaseUnavailable()


def install_outage_handlers(app: FastAPI) -> None:
    """A route's database outage answers as `DatabaseUnavailable` does through the app's own
    handlers (problem+json; a hosted page's handler renders a page, `common.pages`); any other
    exception of those classes, or any in an app without a database (the gateway), goes on to
    the catch-all 500 as before."""

    async def on_database_error(request: Request, error: Exception) -> Response:
        has_database = runtime_of(request.app).database is not None
        answer = outage_answer(error, request.url.path) if has_database else None
        if answer is None:
            raise error
        for cls in type(answer).__mro__:
            handler = request.app.exception_handlers.get(cls)
            if handler is not None:
                response: Response = await handler(request, answer)
                return response
        raise AssertionError("install_error_handlers renders every AppError")

    for cls in OUTAGE_CLASSES:
        app.add_exception_handler(cls, on_database_error)


class FirstStatementRetry(Session):
    """A session whose first statement, finding its connection dead (a disconnect error, the
    connection invalidated), is run once more on a new connection: nothing was done on the dead
    one, so nothing is repeated. Later statements, and a session holding unflushed changes or
    inside an explicit `begin()`, are not retried: their transaction is lost with the connection."""

    def execute(self, statement: Executable, params: Any = None, **options: Any) -> Result[Any]:
        if self.in_transaction() or self.new or self.dirty or self.deleted:
            return super().execute(statement, params, **options)
        try:
            return super().execute(statement, params, **options)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            logger.warning("a pooled connection was dead; the statement runs on a new one")
            self.rollback()
        return super().execute(statement, params, **options)


class Database:
    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=FirstStatementRetry
        )
        # Reads without a transaction: each statement commits on its own (no BEGIN, no COMMIT:
        # two round trips fewer), on the same pool.
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            sync_session_class=FirstStatementRetry,
        )

        # Statement → (its SQL for asyncpg, its parameters' names in order), compiled once.
        self._compiled: dict[Select[*tuple[Any, ...]], tuple[str, tuple[str, ...]]] = {}
        self._raw = self.engine.dialect.driver == "asyncpg"

    @classmethod
    def for_service(cls, url: str, settings: ServiceSettings) -> Database:
        """A service's database at `url`, its pool sized by the settings every service shares."""
        return cls(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

    async def read_rows(
        self, statement: Select[*tuple[Any, ...]], params: Mapping[str, Any]
    ) -> Sequence[Mapping[Any, Any]]:
        """The rows of one read, outside any transaction, as mappings (column name → value).

        On asyncpg the statement runs on the pooled driver connection itself, prepared by
        asyncpg's own statement cache: no session, no result processing, no isolation level
        set at checkout (measured: over a third of a `GET /users/me`). Values are the driver's,
        which for this platform's types are what the ORM hands back (a `timestamptz` comes back
        aware UTC, as `UTCDateTime` makes it). A first run that finds its connection dead runs
        once more on a new one, as `FirstStatementRetry` does. SQLite: a read session."""
        if not self._raw:
            async with self.read_sessionmaker() as db:
                return list((await db.execute(statement, params)).mappings())
        compiled = self._compiled.get(statement)
        if compiled is None:
            done = statement.compile(dialect=self.engine.dialect)
            compiled = self._compiled[statement] = (done.string, tuple(done.positiontup or ()))
        sql, names = compiled
        args = [params[name] for name in names]
        for last in (False, True):
            connection = await self.engine.raw_connection()
            driver: Any = connection.driver_connection  # an asyncpg.Connection (untyped)
            try:
                rows: Sequence[Mapping[Any, Any]] = await driver.fetch(sql, *args)
                return rows
            except TimeoutError as error:  # an OSError: not a dead connection, not run again
                connection.invalidate()  # outside a greenlet: closed at once
                raise DatabaseNotAnswering() from error
            except DEAD_CONNECTION:
                if last:
                    raise
                logger.warning("a pooled connection was dead; the statement runs on a new one")
                connection.invalidate()
            finally:
                # In a greenlet: returning an overflow connection to a full pool closes it.
                await greenlet_spawn(connection.close)
        raise AssertionError("the second run returns or raises")

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


@asynccontextmanager
async def request_transaction(database: Database) -> AsyncIterator[AsyncSession]:
    """The request's transaction as `get_db` runs it (committed, or committed before the
    `CommitThenAnswer` error goes on, or rolled back), for a route outside FastAPI's dependencies
    (`common.hot`)."""
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


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request_transaction(required(runtime_of(request.app).database, "database")) as db:
        yield db


DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def get_read_db(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for a route that only reads, outside any transaction: each statement
    sees what was committed when it ran, so a route reading with one statement (or not needing
    one snapshot across several) answers as in a transaction, without its BEGIN and COMMIT."""
    database = required(runtime_of(request.app).database, "database")
    async with database.read_sessionmaker() as db:
        yield db


ReadDbDep = Annotated[AsyncSession, Depends(get_read_db, scope="function")]


def get_database(request: Request) -> Database:
    """The database itself, for a route whose one read is `Database.read_rows`."""
    return required(runtime_of(request.app).database, "database")


DatabaseDep = Annotated[Database, Depends(get_database)]
