"""Every suite's shared setting: smaller database pools than production's (common.settings), so
that the suites of several checkouts can share one PostgreSQL server. Services the integration
tests start as processes inherit it through the environment; `make bench` runs outside pytest,
with production's.

And every test leaves logging as it found it: a test that runs a service's CLI (typer's
CliRunner) has `common.logs.configure_logging` put a handler on the root logger writing to the
runner's captured stdout, which is closed when the command returns; left there, every later log
record (an SMTP sink's thread, a service under test) fails with "I/O operation on closed file"."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("DATABASE_POOL_SIZE", "5")
os.environ.setdefault("DATABASE_MAX_OVERFLOW", "15")


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    root = logging.getLogger()
    named = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = (
        root.handlers[:],
        root.level,
        [(x.handlers[:], x.propagate, x.disabled) for x in named],
    )
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for logger, (handlers, propagate, disabled) in zip(named, saved[2], strict=True):
        logger.handlers[:], logger.propagate, logger.disabled = handlers, propagate, disabled
