"""What the soak starts itself besides the services and its throwaway Redis (common.testing):
HAProxy, an SMTP sink that counts per recipient, a RabbitMQ tap that counts every event published,
and RSS readings."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from common.events import EXCHANGE
from common.testing import free_port

from bench.proc import stop_process
from bench.smtp_sink import SmtpSinkProtocol


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


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
        if self.process is not None:
            stop_process(self.process)
        self.process = None


MESSAGE_ID = re.compile(rb"^Message-ID: *<([^.>]+)\.([^@>]+)@", re.MULTILINE | re.IGNORECASE)


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


class SinkProtocol(SmtpSinkProtocol):
    """Counts each message per (kind from the Message-ID, recipient)."""

    name = b"soak-sink"

    def __init__(self, mail: Mail) -> None:
        super().__init__()
        self.mail = mail

    def accepted(self, message: bytes, recipients: list[str]) -> None:
        found = MESSAGE_ID.search(message)
        event_id, kind = (found.group(1).decode(), found.group(2).decode()) if found else ("-", "?")
        self.mail.accepted += 1
        self.mail.per_event[event_id] += 1
        tokens = reset_tokens(message) if b"reset-password" in message else []
        for recipient in recipients:
            key = (kind, recipient)
            self.mail.per_recipient[key] += 1
            self.mail.first_seen.setdefault(key, time.monotonic())
            if tokens:
                self.mail.reset_tokens.setdefault(recipient, []).extend(tokens)


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
