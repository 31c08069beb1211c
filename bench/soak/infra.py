"""What the soak starts itself besides the services: a throwaway Redis, HAProxy, an SMTP sink that
counts per recipient, a RabbitMQ tap that counts every event published, and RSS readings."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aio_pika
import redis
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from common.events import EXCHANGE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class ThrowawayRedis:
    """A redis-server of the soak's own on a spare port, no persistence: stopped, it comes back
    empty, as a Redis pod restarted without a volume would."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is missing (Debian package redis-server)")
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_timeout=0.5) as probe:
                    if probe.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("the throwaway redis did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


HAPROXY_GLOBAL = """
global
  maxconn 4096
  nbthread 1
  stats socket {socket} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 10s
  timeout check 5s
  retries 3
  option redispatch 1
  option http-keep-alive
  default-server check inter 1s fastinter 500ms downinter 1s rise 1 fall 3
"""

HAPROXY_SERVICE = """
frontend {name}
  bind 127.0.0.1:{port}
{frontend_options}  default_backend {name}_replicas
backend {name}_replicas
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
{servers}
"""


class HAProxy:
    """A load balancer in front of each service's replicas, on loopback, as a Kubernetes Service
    would be: it sends only to replicas whose `/ready` answers 200 (checked every second, out
    after 3 failures in a row, as a readiness probe's failureThreshold; one slow answer on a busy
    machine must not take the last replica out), and a connection that cannot be made is tried
    on another replica (`retry-on conn-failure`, the default: a request once sent is never
    replayed)."""

    def __init__(self, directory: Path, backends: dict[str, list[int]]) -> None:
        self.directory = directory
        self.backends = backends
        self.ports = {name: free_port() for name in backends}
        self.socket = directory / "haproxy.sock"
        self.config = directory / "haproxy.cfg"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @staticmethod
    def server_name(name: str, port: int) -> str:
        """A backend's server is a port slot: a replica started on a spare slot's port joins the
        rotation when its health check passes (the slots outnumber the replicas by one)."""
        return f"{name}-{port}"

    def render(self) -> str:
        parts = [HAPROXY_GLOBAL.format(socket=self.socket)]
        for name, ports in self.backends.items():
            servers = "\n".join(
                f"  server {self.server_name(name, port)} 127.0.0.1:{port}" for port in ports
            )
            options = "  option forwardfor\n" if name == "gateway" else ""
            parts.append(
                HAPROXY_SERVICE.format(
                    name=name, port=self.ports[name], frontend_options=options, servers=servers
                )
            )
        return "".join(parts)

    def start(self) -> None:
        binary = shutil.which("haproxy") or (
            "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
        )
        if binary is None:
            raise SystemExit("haproxy is missing: run `make system-deps` (Debian package haproxy)")
        self.config.write_text(self.render())
        subprocess.run([binary, "-c", "-q", "-f", str(self.config)], check=True)
        with (self.directory / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def states(self) -> dict[str, str]:
        """`{"users-1": "UP", ...}` from the stats socket."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(2)
            connection.connect(str(self.socket))
            connection.sendall(b"show stat\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        states: dict[str, str] = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                states[row["svname"]] = row.get("status", "?")
        return states

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


MESSAGE_ID = re.compile(rb"^Message-ID: *<([^.>]+)\.([^@>]+)@", re.MULTILINE | re.IGNORECASE)
RCPT = re.compile(rb"^RCPT TO: *<([^>]*)>", re.IGNORECASE)


@dataclass
class Mail:
    """Every message the sink accepted: (kind, recipient) → count, and per event id."""

    per_recipient: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_event: Counter[str] = field(default_factory=Counter)
    first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    accepted: int = 0
    # recipient → the tokens of the password-reset links sent to it, in order (API.md §8).
    reset_tokens: dict[str, list[str]] = field(default_factory=dict)

    def count(self, kind: str) -> Counter[str]:
        return Counter({r: n for (k, r), n in self.per_recipient.items() if k == kind})


class SinkProtocol(asyncio.Protocol):
    """One SMTP session (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that accepts everything
    and counts each message per (kind from the Message-ID, recipient)."""

    def __init__(self, mail: Mail) -> None:
        self.mail = mail
        self.buffer = bytearray()
        self.in_data = False
        self.recipients: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(b"220 soak-sink ESMTP\r\n")

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
                self.accepted(message)
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
            self.transport.write(b"250-soak-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
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

    def accepted(self, message: bytes) -> None:
        found = MESSAGE_ID.search(message)
        event_id, kind = (found.group(1).decode(), found.group(2).decode()) if found else ("-", "?")
        self.mail.accepted += 1
        self.mail.per_event[event_id] += 1
        tokens = reset_tokens(message) if b"reset-password" in message else []
        for recipient in self.recipients:
            key = (kind, recipient)
            self.mail.per_recipient[key] += 1
            self.mail.first_seen.setdefault(key, time.monotonic())
            if tokens:
                self.mail.reset_tokens.setdefault(recipient, []).extend(tokens)
        self.recipients = []


RESET_LINK = re.compile(r"reset-password\?token=([A-Za-z0-9_\-.~%]+)")


def reset_tokens(message: bytes) -> list[str]:
    """The tokens of the reset links in a message's plain-text part (quoted-printable decoded)."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    found: list[str] = []
    for part in parsed.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                found += RESET_LINK.findall(text.decode(errors="replace"))
    return list(dict.fromkeys(found))


class MailSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.mail = Mail()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SinkProtocol(self.mail), "127.0.0.1", self.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)


@dataclass
class Published:
    """Every event published to the exchange, as a queue of the soak's own bound to `#` sees it."""

    per_id: Counter[str] = field(default_factory=Counter)
    types: dict[str, str] = field(default_factory=dict)

    def duplicates(self) -> Counter[str]:
        """Per event type, how many extra copies were published."""
        extra: Counter[str] = Counter()
        for event_id, count in self.per_id.items():
            if count > 1:
                extra[self.types.get(event_id, "?")] += count - 1
        return extra


class EventTap:
    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.published = Published()
        self._connection: AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = json.loads(message.body)
            event_id, kind = str(envelope["id"]), str(envelope["type"])
        except (ValueError, KeyError, TypeError):
            event_id, kind = f"unreadable-{message.message_id}", "?"
        self.published.per_id[event_id] += 1
        self.published.types[event_id] = kind

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
