"""A throwaway RabbitMQ node on spare ports for fault tests (never the shared one).

`rabbitmq-server` drops to the `rabbitmq` user when started as root, so its folder is handed to
that user. It is stopped with `rabbitmqctl -n <its node name> stop`, which touches only it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common.testing import free_port

BOOT_LIMIT_SECONDS = 180


def _spare_port_pair() -> int:
    """A port p with p + 20000 (the Erlang distribution port) also free."""
    for _ in range(50):
        port = free_port()
        if port + 20000 < 65536:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 20000))
                return port
            except OSError:
                continue
    raise RuntimeError("no spare port pair for a throwaway RabbitMQ node")


def unavailable_reason() -> str | None:
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        return "rabbitmq-server is not installed here"
    return None


class ThrowawayRabbit:
    def __init__(self) -> None:
        self.port = _spare_port_pair()
        self.node = f"gh-test-{self.port}@localhost"
        self.directory = Path(tempfile.mkdtemp(prefix=f"gh-rmq-{self.port}-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._process: subprocess.Popen[bytes] | None = None
        (self.directory / "plugins").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        )
        if os.geteuid() == 0:
            for path in [self.directory, *self.directory.iterdir()]:
                shutil.chown(path, "rabbitmq", "rabbitmq")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 20000),
            "RABBITMQ_MNESIA_BASE": str(self.directory),
            "RABBITMQ_LOG_BASE": str(self.directory),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
        }

    def start(self) -> None:
        with (self.directory / "server.out").open("ab") as log:
            self._process = subprocess.Popen(
                ["rabbitmq-server"],
                env=self._env(),
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + BOOT_LIMIT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"throwaway RabbitMQ exited; see {self.directory}")
            if self._ctl("await_startup", "-t", "2").returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("throwaway RabbitMQ did not boot in time")

    def stop(self) -> None:
        self._ctl("stop")
        if self._process is not None:
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            capture_output=True,
            check=False,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
