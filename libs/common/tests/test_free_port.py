"""The test servers' ports: free when handed out, outside the range outgoing connections take
their local ports from (so none takes one before its server binds it), never handed out twice."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from common.testing import FREE_PORTS_FROM, ephemeral_ports, free_port


def test_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    ephemeral = ephemeral_ports()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(FREE_PORTS_FROM <= port < ephemeral.start for port in ports), ephemeral
    with socket.socket() as server:  # free indeed
        server.bind(("127.0.0.1", ports[-1]))
        server.listen()


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        monkeypatch.setattr("common.testing.FREE_PORTS_FROM", busy)
        monkeypatch.setattr("common.testing.ephemeral_ports", lambda: range(busy + 1_000, 65_536))
        draws = iter([0, 0, *range(1, 100)])  # the port in use, twice, then the next ones
        monkeypatch.setattr(
            "common.testing.secrets", SimpleNamespace(randbelow=lambda _: next(draws))
        )
        port = free_port()
    assert busy < port < busy + 100


def test_the_ephemeral_range_is_the_kernels(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_ports(setting) == range(40_000, 50_001)
    assert ephemeral_ports(tmp_path / "absent") == range(32_768, 61_000)
