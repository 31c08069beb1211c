"""The notifier: consumes account events and sends their emails (welcome, reset link, password
changed, the MFA notices). HTTP is ops only: `/health`, `/ready` (database, broker, SMTP
when configured) and `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.app import create_service_app
from common.broker import (
    MFA_NOTICES,
    RECOVERY_EMAILS,
    VERIFICATION_EMAILS,
    WELCOME_EMAILS,
    Broker,
    subscribe,
)
from common.db import Database
from common.embedded import Embedded, make_broker
from common.state import keep_state
from fastapi import FastAPI

from notifier.deliveries.service import AccountEmailService
from notifier.mail.transports import EmlFileTransport, MailTransport, SmtpTransport
from notifier.settings import NotifierSettings
from notifier.state import NotifierState


def make_transport(settings: NotifierSettings) -> MailTransport:
    if not settings.smtp_host:
        return EmlFileTransport(settings.mail_dir)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpTransport(
        settings.smtp_host,
        settings.smtp_port,
        username=settings.smtp_username,
        password=password,
        timeout=settings.smtp_timeout_seconds,
        pool_size=settings.smtp_pool_size,
    )


def create_app(
    settings: NotifierSettings | None = None,
    *,
    embedded: Embedded | None = None,
    broker: Broker | None = None,
    transport: MailTransport | None = None,
) -> FastAPI:
    """`broker` and `transport` replace the ones built from the settings (tests); the app closes
    them at shutdown either way."""
    settings = settings or NotifierSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.for_service(settings.notifier_database_url, settings)
        events = broker or make_broker(
            settings.amqp_url,
            embedded.broker if embedded else None,
            prefetch=settings.notifier_concurrency,
        )
        mail = transport or make_transport(settings)
        emails = AccountEmailService(
            database.sessionmaker, mail, settings.smtp_from, settings.account_link_base
        )
        checks = {"database": database.ping, "broker": events.ping}
        if settings.smtp_host:
            checks["smtp"] = mail.ping
        keep_state(app, NotifierState(database, events, mail, emails), readiness_checks=checks)
        try:
            await events.start()
            await subscribe(events, WELCOME_EMAILS, emails.handle)
            await subscribe(events, RECOVERY_EMAILS, emails.handle)
            await subscribe(events, MFA_NOTICES, emails.handle)
            await subscribe(events, VERIFICATION_EMAILS, emails.handle)
            yield
        finally:
            await events.close()
            await mail.close()
            await database.dispose()

    return create_service_app(
        "notifier",
        settings,
        lifespan=lifespan,
        description=(
            "Sends the platform's emails (welcome, password reset link, password changed, "
            "email verification link, email change notice, lockout notice)."
        ),
    )
