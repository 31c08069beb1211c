from __future__ import annotations

import json
import logging

import httpx
from common.app import create_service_app
from common.logs import JsonFormatter, accept_request_id, request_id_var
from common.settings import ServiceSettings
from fastapi import FastAPI


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
