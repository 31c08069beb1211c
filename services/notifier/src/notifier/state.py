"""What the notifier's lifespan builds, in one object (common.state). No route reads it (the
notifier's HTTP is ops only); it is what a test or an operator's shell finds on the app."""

from __future__ import annotations

from dataclasses import dataclass

from common.broker import Broker
from common.db import Database

from notifier.deliveries.service import AccountEmailService
from notifier.mail.transports import MailTransport


@dataclass(frozen=True, slots=True)
class NotifierState:
    db: Database
    broker: Broker
    mail_transport: MailTransport
    emails: AccountEmailService
