"""The auth service: signing keys, sessions and refresh families, service clients, second
factors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from common.app import create_service_app
from common.broker import Broker
from common.db import Database
from common.embedded import Embedded, make_broker
from common.health import ReadinessCheck
from common.outbox import OutboxRelay
from common.pages import PageKit, PageScript
from common.redis import make_redis
from common.state import keep_service_state
from fastapi import FastAPI

from auth.clients.router import router as clients_router
from auth.clients.service import BUILT_IN_CLIENTS, seed_clients_once
from auth.clock import Clock, system_clock
from auth.events.handler import consume_user_events, user_event_handler
from auth.hot import hot_routes
from auth.internal.router import router as internal_router
from auth.keys.maintenance import maintain_keys
from auth.keys.router import router as jwks_router
from auth.keys.service import KeyRing, KeyRingJwks, ensure_active_key
from auth.mfa.crypto import SecretBox
from auth.mfa.router import router as mfa_router
from auth.models import OutboxEvent
from auth.oauth.discovery import router as discovery_router
from auth.oauth.errors import OAuthError, oauth_error_handler
from auth.oauth.introspection import router as introspection_router
from auth.oauth.router import router as oauth_router
from auth.oauth.token_status import TokenInspector
from auth.oidc.logout import router as logout_router
from auth.oidc.router import router as authorize_router
from auth.oidc.userinfo import router as userinfo_router
from auth.passkeys.router import router as passkeys_router
from auth.revocation.service import MarkerRestorer, watch_markers
from auth.sessions.router import router as sessions_router
from auth.settings import AuthSettings
from auth.signing import AccessTokenSigner
from auth.state import AuthState
from auth.upstream.users import (
    USERS_AUDIENCE,
    AiohttpUsers,
    HttpxUsers,
    UsersClient,
    UsersHttp,
)

logger = logging.getLogger("gatehouse.auth")

SERVICE_NAME = "auth"
PAGE_TEMPLATES = Path(__file__).parent / "oidc" / "templates"
STYLESHEET_PATH = "/api/v1/auth/static/pages.css"
# The one script of the pages that offer passkeys (the others have none).
PAGE_SCRIPT = PageScript.of(
    "/api/v1/auth/static/passkeys.js", Path(__file__).parent / "oidc" / "static" / "passkeys.js"
)
USERS_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def event_broker(
    settings: AuthSettings, embedded: Embedded | None, broker: Broker | None
) -> Broker | None:
    """The broker to consume account events from: given, the embedded run's, or AMQP_URL's."""
    if broker is not None:
        return broker
    shared = embedded.broker if embedded is not None else None
    if shared is not None or settings.amqp_url:
        return make_broker(settings.amqp_url, shared)
    logger.warning("no broker: account events are not consumed")
    return None


def token_audiences(settings: AuthSettings) -> set[str]:
    audiences = {settings.audience, SERVICE_NAME, USERS_AUDIENCE}
    for client in BUILT_IN_CLIENTS:
        audiences |= client.audiences
    return audiences


def create_app(
    settings: AuthSettings | None = None,
    *,
    embedded: Embedded | None = None,
    users_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    broker: Broker | None = None,
) -> FastAPI:
    settings = settings or AuthSettings()
    now = clock or system_clock
    # The hosted sign-in, consent and sign-out pages (API.md §13), on the kit the account pages
    # use; the stylesheet and the passkey script under the /api/v1/auth/ prefix the gateway
    # routes here.
    kit = PageKit.for_service(
        settings, PAGE_TEMPLATES, stylesheet_path=STYLESHEET_PATH, script=PAGE_SCRIPT
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.for_service(settings.auth_database_url, settings)
        # Marker writes are idempotent: one retry on a fresh connection after a Redis restart.
        redis = make_redis(settings.redis_url, embedded.redis if embedded else None, retries=1)
        http: UsersHttp = (
            AiohttpUsers(settings.users_url, USERS_TIMEOUT)
            if users_transport is None
            else HttpxUsers(settings.users_url, users_transport, USERS_TIMEOUT)
        )
        events = event_broker(settings, embedded, broker)
        # The MFA notices (API.md §12) leave through auth's outbox; with no broker they wait in it.
        relay = OutboxRelay(database, OutboxEvent, events) if events is not None else None
        maintenance: asyncio.Task[None] | None = None
        markers: asyncio.Task[None] | None = None
        try:
            await ensure_active_key(database, settings, now)
            ring = KeyRing(settings, now)
            await ring.reload_from(database)
            async with database.sessionmaker() as db:
                await seed_clients_once(db, settings, now)
            signer = AccessTokenSigner(ring, settings, now)
            jwks = KeyRingJwks(ring)
            state = AuthState(
                settings=settings,
                clock=now,
                db=database,
                redis=redis,
                key_ring=ring,
                id_token_keys=jwks,
                signer=signer,
                users=UsersClient(http, signer, now),
                mfa_box=SecretBox(settings.mfa_encryption_key_bytes()),
                token_inspector=TokenInspector(ring, settings, token_audiences(settings)),
                page_kit=kit,
            )
            # Redis down: logins and refreshes go on; ending sessions (logout, revocation, a
            # reused or expired refresh token, account events) answers 503 until it is back.
            degradable: dict[str, ReadinessCheck] = {"redis": redis.ping}
            keep_service_state(
                app,
                state,
                database=database,
                jwks=jwks,
                name=SERVICE_NAME,
                cache_size=settings.verified_token_cache,
                degradable_checks=degradable,
            )
            if events is not None:
                await events.start()
                handler = user_event_handler(database, redis, settings, now)
                await consume_user_events(events, handler)
                # RabbitMQ down: logins and refreshes go on; account events wait in the queue.
                degradable["broker"] = events.ping
            if relay is not None:
                await relay.start()
            maintenance = asyncio.create_task(
                maintain_keys(database, ring, settings, now), name="auth key maintenance"
            )
            restorer = MarkerRestorer(database, redis, settings, now)
            try:  # before serving, so that a fresh (or embedded) store is complete at once
                await restorer.ensure_markers()
            except Exception as exc:  # Redis down at start: the watcher restores once it is up
                logger.error("revocation markers not checked at start (%s)", type(exc).__name__)
            markers = asyncio.create_task(
                watch_markers(restorer, settings.revocation_check_seconds),
                name="auth revocation markers",
            )
            yield
        finally:
            if markers is not None:
                markers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await markers
            if maintenance is not None:
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance
            if relay is not None:
                await relay.stop()
            if events is not None:
                await events.close()
            await http.aclose()
            await redis.aclose()
            await database.dispose()

    app = create_service_app(
        SERVICE_NAME,
        settings,
        lifespan=lifespan,
        routers=[
            sessions_router,
            mfa_router,
            passkeys_router,
            oauth_router,
            clients_router,
            authorize_router,
            userinfo_router,
            logout_router,
            introspection_router,
            internal_router,
            jwks_router,
            discovery_router,
        ],
        description="Signing keys, sessions, refresh tokens and service clients.",
    )
    app.add_exception_handler(OAuthError, oauth_error_handler)
    app.router.routes.append(kit.stylesheet_route())
    kit.install_outage_page(app)
    app.router.routes.append(PAGE_SCRIPT.route())
    # Innermost (appended, where add_middleware would put them outermost): introspection and the
    # key set in plain ASGI behind the request id, metrics and tracing layers (auth.hot).
    app.user_middleware.extend(hot_routes())
    return app
