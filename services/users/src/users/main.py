"""The users service: accounts, profiles and role-based access control."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from common.app import create_service_app
from common.broker import Broker
from common.db import Database
from common.embedded import Embedded, make_broker
from common.outbox import OutboxRelay
from common.pages import PageKit
from common.state import keep_service_state
from common.tokens import JwksCache, http_jwks_fetcher
from fastapi import FastAPI

from users.accounts.hot import me_route
from users.accounts.router import router as accounts_router
from users.bootstrap import bootstrap_admin
from users.clock import Clock, system_clock
from users.credentials.lockout import LockoutPolicy
from users.internal.router import router as internal_router
from users.models import OutboxEvent
from users.pages.router import STYLESHEET_PATH, TEMPLATES
from users.pages.router import router as pages_router
from users.passwords.hashing import PasswordHasher
from users.passwords.policy import common_passwords
from users.recovery.router import router as recovery_router
from users.recovery.service import ResetLinks
from users.settings import UsersSettings
from users.state import UsersState
from users.upstream.auth import TIMEOUT as AUTH_TIMEOUT
from users.upstream.auth import AuthSessionsClient
from users.verification.router import router as verification_router
from users.verification.service import VerificationLinks

logger = logging.getLogger("gatehouse.users")

SERVICE_NAME = "users"


def create_app(
    settings: UsersSettings | None = None,
    *,
    embedded: Embedded | None = None,
    broker: Broker | None = None,
    jwks: JwksCache | None = None,
    clock: Clock | None = None,
    auth_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`broker`, `jwks`, `clock` and `auth_transport` replace the AMQP_URL broker, auth's JWKS,
    the system clock and the connection to auth's API (tests)."""
    settings = settings or UsersSettings()
    # The pages the emails link to (common.pages): templates, stylesheet, CSRF (users.pages).
    pages = PageKit.for_service(settings, TEMPLATES, stylesheet_path=STYLESHEET_PATH)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.for_service(settings.users_database_url, settings)
        events = broker or make_broker(settings.amqp_url, embedded.broker if embedded else None)
        keys = jwks or JwksCache(
            http_jwks_fetcher(settings.jwks_url),
            max_age=settings.jwks_cache_seconds,
            refetch_cooldown=settings.jwks_refetch_cooldown_seconds,
        )
        auth_http = httpx.AsyncClient(
            base_url=settings.auth_url, transport=auth_transport, timeout=AUTH_TIMEOUT
        )
        relay = OutboxRelay(database, OutboxEvent, events)
        hasher = PasswordHasher(
            settings.bcrypt_rounds,
            settings.bcrypt_concurrency,
            queue_size=settings.bcrypt_queue_size,
            max_wait=settings.bcrypt_queue_timeout,
        )
        common_passwords()  # load the list now, not on the first registration
        now = clock or system_clock
        reset_ttl = timedelta(seconds=settings.password_reset_ttl_seconds)
        reset_links = ResetLinks(database, now, reset_ttl)
        state = UsersState(
            db=database,
            hasher=hasher,
            clock=now,
            reset_links=reset_links,
            verification_links=VerificationLinks(
                now, timedelta(seconds=settings.email_verification_ttl_seconds)
            ),
            lockout=LockoutPolicy(settings.lockout_threshold, now, reset_ttl),
            auth_sessions=AuthSessionsClient(
                auth_http, settings.internal_client_secret.get_secret_value()
            ),
            pages=pages,
        )
        # Service tokens too (auth's, at every refresh): a cached verification, not an RSA one.
        keep_service_state(
            app,
            state,
            database=database,
            jwks=keys,
            name=SERVICE_NAME,
            cache_size=settings.verified_token_cache,
            # RabbitMQ down: registrations go on into the outbox (reported, not a reason to leave).
            degradable_checks={"broker": events.ping},
        )
        try:
            admin = settings.bootstrap_admin()
            if admin is not None:
                await bootstrap_admin(database, hasher, admin)
            await events.start()
            await relay.start()
            yield
        finally:
            await reset_links.drain()
            await relay.stop()
            await events.close()
            await database.dispose()
            await auth_http.aclose()
            hasher.close()

    app = create_service_app(
        SERVICE_NAME,
        settings,
        lifespan=lifespan,
        routers=[
            recovery_router,
            verification_router,
            accounts_router,
            internal_router,
            pages_router,
        ],
        description="Accounts, profiles and role-based access control.",
    )
    pages.install(app)
    # Innermost (appended, where add_middleware would put it outermost): GET /me in plain ASGI
    # behind the request id, metrics and tracing layers (users.accounts.hot).
    app.user_middleware.append(me_route())
    return app
