"""Where email goes: an SMTP server (aiosmtplib, STARTTLS when offered, pooled connections), or
`.eml` files under `var/mail/` in embedded mode.

SMTP failures are sorted into the two kinds the broker understands: `PermanentFailure` for a 5xx
answer (dead-lettered) and `RetryableMailError` for a 4xx answer or a connection problem (retried
with backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Protocol

import aiosmtplib
from common.broker import PermanentFailure

from notifier.mail.messages import OutgoingEmail

CONNECTION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


class RetryableMailError(Exception):
    """The server was unreachable or answered 4xx: try again later."""


class ConnectionLost(RetryableMailError):
    """The connection failed under the command (not an answer from the server)."""


class MailTransport(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 8,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.timeout = timeout
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(pool_size)

    def _client(self) -> aiosmtplib.SMTP:
        # start_tls=None: STARTTLS when the server offers it.
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            start_tls=None,
            username=self.username,
            password=self.password,
        )

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A connected client, and whether it was reused from the pool."""
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
        client = self._client()
        try:
            await client.connect()
        except CONNECTION_ERRORS as exc:
            raise RetryableMailError(f"SMTP unavailable: {type(exc).__name__}") from exc
        return client, False

    async def send(self, email: OutgoingEmail) -> None:
        async with self._slots:
            client, reused = await self._checkout()
            try:
                await self._send_on(client, email)
            except ConnectionLost:
                if not reused:
                    raise
                # A pooled connection may have been closed by the server while idle; a 4xx
                # answer, on the other hand, is the server's word and waits for the retry.
                client, _ = await self._checkout()
                await self._send_on(client, email)

    async def _send_on(self, client: aiosmtplib.SMTP, email: OutgoingEmail) -> None:
        options = ["SMTPUTF8"] if email.needs_smtputf8 else None
        try:
            await client.sendmail(
                email.sender, email.recipients, email.content, mail_options=options
            )
        except aiosmtplib.SMTPNotSupported as exc:
            self._idle.append(client)  # the connection itself is fine
            raise PermanentFailure(f"SMTP server cannot take this message: {exc}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._idle.append(client)  # sendmail reset the envelope (RSET)
            codes = [refused.code for refused in exc.recipients]
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"SMTP recipient refused: {codes}") from exc
            raise RetryableMailError(f"SMTP recipient refused: {codes}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            await _discard(client)
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from exc
            raise RetryableMailError(f"SMTP {exc.code}: {exc.message}") from exc
        except CONNECTION_ERRORS as exc:
            await _discard(client)
            raise ConnectionLost(f"SMTP unavailable: {type(exc).__name__}") from exc
        self._idle.append(client)

    async def ping(self) -> None:
        client = self._client()
        await client.connect()
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.quit()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _discard(client)


async def _discard(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except CONNECTION_ERRORS:
        client.close()


class EmlFileTransport:
    """Embedded mode: each email becomes `<mail_dir>/<event id>.eml` (same id → same file)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, email: OutgoingEmail) -> None:
        path = self.directory / f"{email.event_id}.eml"
        await asyncio.to_thread(self._write, path, email.content)

    def _write(self, path: Path, content: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(content)
        partial.replace(path)

    async def ping(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None
