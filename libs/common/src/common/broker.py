"""The event broker contract shared by publishers (users' and auth's outbox relays) and consumers.

Two implementations sit behind `Broker`: RabbitMQ through aio-pika (`common.rabbitmq`, real
infrastructure) and the in-process broker of embedded mode (`common.inprocess_broker`). What both
share lives here: the interface, the topology, the retry policy, the errors a caller can see and
the validation of a message on the consumer's side.

The topology: each consumer's queue and the routing keys bound to it are declared once, below.
Every broker declares all of them at start, so a publish is routable even before the consumer's
first start (users may start before auth and the notifier), and each consumer consumes with its
own subscription from here. A service imports only `common` and itself, so this is the one place
publishers and consumers can both read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from common.events import Envelope, EventType

EventHandler = Callable[[Envelope], Awaitable[None]]

# Header carrying how many times a message has been handled (and failed) so far.
ATTEMPTS_HEADER = "x-gatehouse-attempts"
ERROR_HEADER = "x-gatehouse-error"


@dataclass(frozen=True)
class Subscription:
    """A consumer's queue and the routing keys (event types) bound to it."""

    queue: str
    routing_keys: tuple[EventType, ...]


# The notifier sends the welcome email (notifier.deliveries).
WELCOME_EMAILS = Subscription("notifier.user-registered", ("user.registered",))
# Auth ends sessions on a password change or a deactivation, and audits the other account changes
# (auth.events.handler).
ACCOUNT_SESSIONS = Subscription(
    "auth.user-sessions",
    (
        "user.password_changed",
        "user.deactivated",
        "user.roles_changed",
        "user.updated",
        "user.email_verified",
    ),
)
# The notifier sends the reset link, the "your password was changed" notice after a reset, and
# the lockout notice (with a reset link).
RECOVERY_EMAILS = Subscription(
    "notifier.account-recovery",
    ("user.password_reset_requested", "user.password_reset", "user.locked_out"),
)
# The notifier tells the owner their second factor changed or a recovery code was used; auth
# publishes these through its own outbox.
MFA_NOTICES = Subscription(
    "notifier.mfa-notices",
    ("user.mfa_enabled", "user.mfa_disabled", "user.mfa_recovery_code_used"),
)
# The notifier sends verification links: the welcome email of a registration carries one, an
# email change's goes to the new address with a notice to the old one.
VERIFICATION_EMAILS = Subscription(
    "notifier.email-verification", ("user.email_verification_requested",)
)
TOPOLOGY: tuple[Subscription, ...] = (
    WELCOME_EMAILS,
    ACCOUNT_SESSIONS,
    RECOVERY_EMAILS,
    MFA_NOTICES,
    VERIFICATION_EMAILS,
)
# The same, as the brokers take it: queue → routing keys.
CONSUMER_QUEUES: Mapping[str, tuple[str, ...]] = {
    subscription.queue: subscription.routing_keys for subscription in TOPOLOGY
}


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the message goes to the dead-letter queue."""


class UnroutableEvent(Exception):
    """No queue is bound for the event's routing key: publishing it would lose it."""


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now; the caller retries later."""


@dataclass(frozen=True)
class RetryPolicy:
    """Growing delays between attempts; a message that failed `max_attempts` times is dead."""

    delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    max_attempts: int = 10

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return self.delays[min(attempt, len(self.delays)) - 1]


def decode_envelope(body: bytes) -> Envelope:
    """Validate a message body; raises `ValidationError` (→ dead letter) when it is not one."""
    return Envelope.model_validate_json(body)


class Broker(Protocol):
    async def start(self) -> None:
        """Connect and declare the topology (idempotent)."""

    async def publish(self, envelope: Envelope, *, request_id: str | None = None) -> None:
        """Publish to `gatehouse.events` with routing key `envelope.type`; return once confirmed
        (or raise after the broker's publish timeout). `request_id` travels beside the envelope
        (AMQP `correlation_id`) and is the consumer's log request id while it handles it."""

    async def consume(self, queue: str, routing_keys: Sequence[str], handler: EventHandler) -> None:
        """Start consuming `queue` bound to `routing_keys`. The message is acked when `handler`
        returns; when it raises it is retried with backoff, and dead-lettered after the last
        attempt or at once on `PermanentFailure` or an envelope that does not validate."""

    async def ping(self) -> None:
        """Raise when the broker cannot be reached (readiness)."""

    async def close(self) -> None:
        """Stop consumers (after their in-flight message) and close the connection."""


async def subscribe(broker: Broker, subscription: Subscription, handler: EventHandler) -> None:
    """Consume `subscription`'s queue with its routing keys."""
    await broker.consume(subscription.queue, subscription.routing_keys, handler)
