"""The SMTP sink of the events bench and the soak: a minimal server on asyncio Protocols (EHLO/HELO,
MAIL, RCPT, DATA, RSET, NOOP, QUIT) that accepts every message at once. The tests' aiosmtpd
(common.testing.SmtpSink) costs more CPU per message than the notifier itself and would measure
the harness on a 2-core machine."""

from __future__ import annotations

import asyncio
import re
from typing import cast

RCPT = re.compile(rb"^RCPT TO: *<([^>]*)>", re.IGNORECASE)


class SmtpSinkProtocol(asyncio.Protocol):
    """One SMTP session; each message accepted goes to `accepted` with its recipients (lower
    case) before the 250 is written."""

    name = b"sink"

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.in_data = False
        self.recipients: list[str] = []
        self.transport: asyncio.Transport | None = None

    def accepted(self, message: bytes, recipients: list[str]) -> None:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(b"220 " + self.name + b" ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            if self.in_data:
                end = -2 if self.buffer.startswith(b".\r\n") else self.buffer.find(b"\r\n.\r\n")
                if end == -1:
                    return
                message = bytes(self.buffer[: max(end, 0)])
                del self.buffer[: end + 5]
                self.in_data = False
                self.accepted(message, self.recipients)
                self.recipients = []
                self.transport.write(b"250 2.0.0 OK\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end == -1:
                return
            line = bytes(self.buffer[:line_end])
            del self.buffer[: line_end + 2]
            self.command(line)

    def command(self, line: bytes) -> None:
        assert self.transport is not None
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(b"250-" + self.name + b"\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
        elif verb == b"RCPT":
            found = RCPT.match(line)
            self.recipients.append(found.group(1).decode().lower() if found else "?")
            self.transport.write(b"250 OK\r\n")
        elif verb in (b"MAIL", b"RSET"):
            self.recipients = []
            self.transport.write(b"250 OK\r\n")
        elif verb in (b"HELO", b"NOOP"):
            self.transport.write(b"250 OK\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(b"354 end with <CRLF>.<CRLF>\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"502 5.5.2 not implemented\r\n")
