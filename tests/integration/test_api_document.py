"""The merged API document tells tools the truth (issue 13, defect 6): schemathesis (`st run`,
every check, every operation, every phase) against the gateway's `/api/openapi.json` on the
running platform finds nothing. Deterministic (the same cases every run) and small, so it is
bounded; what it is told beyond the document is in schemathesis.toml (statuses the contract gives
to well-formed requests that name what does not exist) and schemathesis_hooks.py (a new admin's
bearer token for each call that needs one).

A platform of its own: hashing at the lowest cost (each call registers and logs in an admin) and
limits the fuzzing does not reach, on a throwaway Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from common.testing import SmtpSink, ThrowawayRedis
from gateway import routes

from .platform import ROOT, Platform, running_platform

HERE = Path(__file__).parent
ST = Path(sys.executable).with_name("st")
# Per operation and phase: with some forty operations, about 1,300 requests in all.
MAX_EXAMPLES = 10
BUDGET_SECONDS = 600  # a hang, not a slow run: the run takes 2-3 minutes on two loaded cores


@pytest.fixture(scope="module")
async def fuzzed(
    redis_node: ThrowawayRedis, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    async with running_platform(
        tmp_path_factory.mktemp("platform-fuzzed"),
        redis_url=redis_node.url(),
        smtp_port=smtp_sink.port,
        extra={
            "BCRYPT_ROUNDS": "4",
            "GATEWAY_RATE_LIMIT": "10000/second",
            "GATEWAY_LOGIN_RATE_LIMIT": "10000/minute",
            "GATEWAY_LOGIN_IP_RATE_LIMIT": "10000/minute",
        },
    ) as running:
        yield running


def document(platform: Platform) -> dict[str, Any]:
    response = httpx.get(platform.url("gateway") + "/api/openapi.json", timeout=30.0)
    assert response.status_code == 200, response.text
    merged: dict[str, Any] = response.json()
    return merged


def operations(merged: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in merged["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    ]


def test_every_documented_operation_has_its_own_route(fuzzed: Platform) -> None:
    """The gateway sends a method its table does not list for a known path to the service as a
    public request (the service's 405 before any token check): so every documented method of
    such a path must be listed, or it would lose the gateway's own token check."""
    for method, path in operations(document(fuzzed)):
        concrete = re.sub(r"\{[^}]+\}", "0b7e3c3e-52f5-4a4e-9a53-6c1c2a3b4d5e", path)
        route = routes.match(method, concrete)
        assert route is not None, (method, path)
        assert not route.name.endswith(".other_method"), (method, path)


def test_schemathesis_finds_nothing(fuzzed: Platform, tmp_path: Path) -> None:
    merged = document(fuzzed)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PYTEST")},
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
        "FUZZ_GATEWAY_URL": fuzzed.url("gateway"),
        "FUZZ_USERS_DATABASE_URL": fuzzed.env["USERS_DATABASE_URL"],
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            *(str(ST), "--config-file", str(HERE / "schemathesis.toml"), "run"),
            fuzzed.url("gateway") + "/api/openapi.json",
            *("--checks", "all"),
            *("--phases", "examples,coverage,fuzzing,stateful"),
            *("--max-examples", str(MAX_EXAMPLES)),
            "--generation-deterministic",
            *("--workers", "2"),
            *("--request-timeout", "30"),
            "--no-color",
        ],
        cwd=tmp_path,  # its cache directory goes there, not into the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-20000:]}\n{fuzzed.log('gateway')}"
    count = len(operations(merged))
    assert f"Selected: {count}/{count}" in output, output[-3000:]
    assert f"Tested: {count}" in output, output[-3000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, output[-3000:]
    print(f"schemathesis: {count} operations in {elapsed:.0f} s")
