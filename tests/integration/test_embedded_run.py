"""`make run` with nothing configured: every service in one process on SQLite, the in-process
store and broker, and mail written to `var/mail/` (docs/ARCHITECTURE.md §5)."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from common.testing import free_port

from .platform import ROOT, SERVICES

INFRASTRUCTURE = (
    "AUTH_DATABASE_URL",
    "USERS_DATABASE_URL",
    "NOTIFIER_DATABASE_URL",
    "REDIS_URL",
    "AMQP_URL",
    "SMTP_HOST",
)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("embedded")
    ports = {service: free_port() for service in SERVICES}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in INFRASTRUCTURE and not key.startswith("PYTEST")
    }
    env.update({f"{service.upper()}_PORT": str(port) for service, port in ports.items()})
    env.update(
        {
            "ISSUER": f"http://127.0.0.1:{ports['gateway']}",
            "AUTH_URL": f"http://127.0.0.1:{ports['auth']}",
            "USERS_URL": f"http://127.0.0.1:{ports['users']}",
            "PYTHONPATH": str(ROOT),
        }
    )
    log_path = workdir / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.run"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"make run exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(gateway + "/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"make run did not become ready:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield gateway, workdir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_embedded_run_prints_readable_lines_and_a_banner(embedded: tuple[str, Path]) -> None:
    gateway, workdir = embedded
    log = workdir / "run.log"
    deadline = time.monotonic() + 15
    while "Gatehouse is up" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert "Gatehouse is up" in text
    assert f"{gateway}/api/docs" in text
    assert str((workdir / "var" / "mail").resolve()) in text
    assert "EMBEDDED MODE" in text
    assert not [line for line in text.splitlines() if line.startswith("{")]


def test_embedded_platform_walks_the_skeleton(embedded: tuple[str, Path]) -> None:
    gateway, workdir = embedded
    tag = uuid.uuid4().hex[:8]
    account = {
        "email": f"grace.{tag}@example.org",
        "username": f"grace_{tag}",
        "password": "a long and unusual passphrase",
        "full_name": "Grace Hopper",
    }
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        created = client.post("/api/v1/users/", json=account)
        assert created.status_code == 201, created.text
        pair = client.post(
            "/api/v1/auth/login",
            data={"username": account["username"], "password": account["password"]},
        )
        assert pair.status_code == 200, pair.text
        token = pair.json()["access_token"]
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == account["email"]
        assert me.json() == created.json()  # the same account, times with their zone too
        assert client.get("/internal/v1/credentials/verify").status_code == 404

    for path in ("auth.db", "users.db", "notifier.db"):
        assert (workdir / "var" / path).exists(), path
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        mails = [
            p for p in (workdir / "var" / "mail").glob("*.eml") if account["email"] in p.read_text()
        ]
        if mails:
            break
        time.sleep(0.1)
    else:
        pytest.fail("no welcome .eml under var/mail/")
    assert len(mails) == 1

    # Verify the address, as README's walk-through does: the link in the welcome .eml, through
    # the page (GET shows a button, the POST with its CSRF token confirms; SQLite behind it).
    welcome = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert isinstance(welcome, EmailMessage)
    welcome_text = welcome.get_body(("plain",))
    assert welcome_text is not None
    verify_link = re.search(r"/account/verify-email\?token=([\w-]+)", welcome_text.get_content())
    assert verify_link is not None, welcome_text.get_content()
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        page = client.get("/account/verify-email", params={"token": verify_link[1]})
        assert page.status_code == 200, page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        confirmed = client.post(
            "/account/verify-email", data={"csrf_token": csrf[1], "token": verify_link[1]}
        )
        assert confirmed.status_code == 200, confirmed.text
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["email_verified"] is True
        again = client.post("/api/v1/users/email/verify", json={"token": verify_link[1]})
        assert again.status_code == 400

    # Forgot my password, as README's walk-through does it: the link from the .eml file.
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        forgot = client.post("/api/v1/users/password/forgot", json={"email": account["email"]})
        assert forgot.status_code == 202, forgot.text
        deadline = time.monotonic() + 15
        link = None
        while link is None and time.monotonic() < deadline:
            for eml in (workdir / "var" / "mail").glob("*.eml"):
                message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
                if str(message["Subject"]).startswith("Reset"):
                    assert isinstance(message, EmailMessage)
                    text = message.get_body(("plain",))
                    assert text is not None
                    link = re.search(r"/account/reset-password\?token=([\w-]+)", text.get_content())
            time.sleep(0.1)
        assert link is not None, "no reset .eml under var/mail/"
        new = "another long and unusual passphrase"
        reset = client.post(
            "/api/v1/users/password/reset", json={"token": link[1], "new_password": new}
        )
        assert reset.status_code == 204, reset.text
        again = client.post(
            "/api/v1/users/password/reset", json={"token": link[1], "new_password": new}
        )
        assert again.status_code == 400
        relogin = client.post(
            "/api/v1/auth/login", data={"username": account["username"], "password": new}
        )
        assert relogin.status_code == 200, relogin.text
