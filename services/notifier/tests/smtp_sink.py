"""An in-test SMTP server (aiosmtpd) that records what it accepts and can refuse on demand."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    # Answer the next `refusals` DATA commands with `refusal` instead of accepting.
    refusal: str = "451 4.3.0 try again later"
    refusals: int = 0
    # While set, an accepted message is recorded but the 250 answer is held back.
    hold: threading.Event | None = None
    # Answer the next `recipient_refusals` RCPT commands with `recipient_refusal`.
    recipient_refusal: str = "550 5.1.1 no such mailbox"
    recipient_refusals: int = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        if self.recipient_refusals > 0:
            self.recipient_refusals -= 1
            return self.recipient_refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        if self.refusals > 0:
            self.refusals -= 1
            return self.refusal
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        while self.hold is not None and self.hold.is_set():  # noqa: ASYNC110 - set from another thread
            await asyncio.sleep(0.02)
        return "250 OK"

    def event_ids(self) -> list[str]:
        return [str(message["X-Gatehouse-Event-Id"]) for message in self.messages]


class SmtpSink:
    def __init__(self, *, smtputf8: bool = False) -> None:
        self.port = free_port()
        self.smtputf8 = smtputf8
        self.handler = SinkHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.smtputf8
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        self.handler.messages.clear()
        self.handler.refusals = 0
        self.handler.refusal = "451 4.3.0 try again later"
        self.handler.hold = None
        self.handler.recipient_refusals = 0
        self.handler.recipient_refusal = "550 5.1.1 no such mailbox"
