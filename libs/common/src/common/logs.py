"""Logs with the request id, and no secrets: JSON lines in production, readable ones in development.

`configure_logging` installs one handler on the root logger, in one of two formats (`LOG_FORMAT`):

- `json`: one JSON object a line for log collectors, carrying the service name, the current
  request id (a context variable set by `RequestIdMiddleware`) and the record's extra fields;
- `console`: one readable line for a developer's terminal (embedded mode's default): local time,
  level, logger, message, then the request id and the extra fields; coloured on a terminal
  (`NO_COLOR` turns colour off, `FORCE_COLOR` on).

Fields whose names look like secrets are masked in both, whatever logger emitted them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["json", "console"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECRET_FIELD = re.compile(r"pass(word)?|secret|token|authorization|cookie|private|hash", re.I)
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
REDACTED = "[redacted]"


def redact(value: Any, key: str = "") -> Any:
    if key and _SECRET_FIELD.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller added to the record (`extra=`), secrets masked."""
    return {
        key: redact(value, key)
        for key, value in record.__dict__.items()
        if key not in _RESERVED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# ANSI SGR codes: dim, and a colour per level.
_DIM = "2"
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_LOGGER_COLOUR = "36"
# uvicorn's copy of its message with its own colour codes.
_CONSOLE_SKIPPED = {"color_message"}


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.234 INFO    auth.events       message  request_id=… key=value`."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        level = record.levelname
        name = record.name.removeprefix("gatehouse.")
        line = " ".join(
            (
                self._paint(_DIM, stamp),
                self._paint(_LEVEL_COLOURS.get(level, "0"), f"{level:<7}"),
                self._paint(_LOGGER_COLOUR, f"{name:<17}"),
                record.getMessage(),
            )
        )
        details = []
        request_id = request_id_var.get()
        if request_id:
            details.append(f"request_id={request_id}")
        details += [
            f"{key}={value}"
            for key, value in extra_fields(record).items()
            if key not in _CONSOLE_SKIPPED
        ]
        if details:
            line += "  " + self._paint(_DIM, " ".join(details))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal, unless `NO_COLOR` is set; always with `FORCE_COLOR`."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def describe(exc: BaseException) -> str:
    """An exception as one short log-safe line: its type and message, at most 500 characters."""
    return f"{type(exc).__name__}: {exc}"[:500]


def configure_logging(service: str, level: str = "INFO", log_format: LogFormat = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if log_format == "console":
        handler.setFormatter(ConsoleFormatter(colour=wants_colour(sys.stdout)))
    else:
        handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates ours and is plain text.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


# Request ids as uuid4().hex looks (32 hex digits) without a urandom call per request: a random
# per-process half and a counter. They correlate log lines; they are not secrets.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(4)))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def accept_request_id(raw: bytes | None) -> str:
    """Keep a well-formed inbound id (so one id follows a request across services)."""
    if raw:
        text = raw.decode("latin-1")
        if _REQUEST_ID_OK.match(text):
            return text
    return new_request_id()


class RequestIdMiddleware:
    """Pure ASGI: sets the request id context variable and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), None)
        request_id = accept_request_id(raw)
        token = request_id_var.set(request_id)
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, encoded))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
