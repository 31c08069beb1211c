from __future__ import annotations

import json
import logging

import httpx
import pytest
from common.app import create_service_app
from common.logs import (
    ConsoleFormatter,
    JsonFormatter,
    LogFormat,
    accept_request_id,
    configure_logging,
    request_id_var,
)
from common.settings import ServiceSettings
from fastapi import FastAPI
from pydantic import ValidationError


def format_record(**extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "levelname": "INFO"})
    for key, value in extra.items():
        setattr(record, key, value)
    out = json.loads(JsonFormatter("users").format(record))
    assert isinstance(out, dict)
    return out


def test_log_line_is_json_with_service_and_request_id() -> None:
    token = request_id_var.set("req-123")
    try:
        entry = format_record(user_id="u1")
    finally:
        request_id_var.reset(token)
    assert entry["message"] == "hello world"
    assert entry["service"] == "users"
    assert entry["request_id"] == "req-123"
    assert entry["user_id"] == "u1"


def test_secret_looking_fields_are_redacted() -> None:
    entry = format_record(
        password="hunter2",
        refresh_token="abc",
        context={"client_secret": "s3", "nested": {"Authorization": "Bearer x"}},
    )
    text = json.dumps(entry)
    assert "hunter2" not in text
    assert "abc" not in text
    assert "s3" not in text
    assert "Bearer x" not in text


def console_line(colour: bool = False, **extra: object) -> str:
    record = logging.makeLogRecord(
        {"msg": "hello %s", "args": ("world",), "levelname": "WARNING", "name": "gatehouse.auth"}
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return ConsoleFormatter(colour=colour).format(record)


def test_console_line_is_readable_with_request_id_and_fields() -> None:
    token = request_id_var.set("req-123")
    try:
        line = console_line(user_id="u1", password="hunter2")
    finally:
        request_id_var.reset(token)
    assert "WARNING" in line
    assert " auth " in line
    assert "hello world" in line
    assert "request_id=req-123" in line
    assert "user_id=u1" in line
    assert "hunter2" not in line
    assert "\x1b[" not in line
    assert not line.startswith("{")


def test_console_line_is_coloured_on_a_terminal() -> None:
    assert "\x1b[33m" in console_line(colour=True)


@pytest.mark.parametrize(
    ("log_format", "formatter"), [("json", JsonFormatter), ("console", ConsoleFormatter)]
)
def test_configure_logging_installs_the_chosen_format(
    log_format: LogFormat, formatter: type[logging.Formatter]
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("users", "INFO", log_format)
        assert isinstance(root.handlers[0].formatter, formatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_log_format_setting_takes_json_or_console_only() -> None:
    assert ServiceSettings().log_format is None
    assert ServiceSettings(log_format="console").log_format == "console"
    with pytest.raises(ValidationError):
        ServiceSettings(log_format="xml")


def test_well_formed_inbound_request_id_is_kept() -> None:
    assert accept_request_id(b"abc-123") == "abc-123"


def test_malformed_inbound_request_id_is_replaced() -> None:
    for raw in (b"", b"a" * 200, b"evil\r\nheader", b"<script>"):
        replaced = accept_request_id(raw)
        assert replaced != raw.decode("latin-1")
        assert len(replaced) == 32


def build_app() -> FastAPI:
    app = create_service_app("sample", ServiceSettings())

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"request_id": request_id_var.get()}

    return app


async def test_request_id_is_echoed_and_visible_to_handlers() -> None:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/whoami", headers={"x-request-id": "trace-7"})
        assert response.headers["x-request-id"] == "trace-7"
        assert response.json() == {"request_id": "trace-7"}
        fresh = await client.get("/whoami")
        assert fresh.headers["x-request-id"] == fresh.json()["request_id"]
