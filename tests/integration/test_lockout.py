"""Account lockout end to end through the gateway (API.md §10): ten failed passwords for one
account from ten client addresses lock it; the refusal looks exactly like a wrong password; the
owner's notice email carries a reset link, and the reset ends the lock.

The clients bind their sockets to 127.0.0.2 … 127.0.0.12, so the gateway (no trusted proxies)
sees ten addresses and tells auth each one. The platform's login limits (TEST_LIMITS: 50/minute per
address + account name, 1000/minute per address) are far above what these tests send, so only
the lockout refuses anything here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from common.testing import SmtpSink

from .platform import Platform
from .support import PASSWORD, email_to, link_token, login, new_account, plain_text, register

WRONG = "definitely not the password"
NEW = "the passphrase after the lockout 7"
LOCKOUT_THRESHOLD = 10  # the default; the platform does not set it
# Headers that differ between any two answers: each request's own id and date, and the limits'
# remaining counts (they count every request of the address).
PER_REQUEST = {"x-request-id", "date", "ratelimit", "ratelimit-policy"}


@asynccontextmanager
async def client_from(platform: Platform, source: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(
        base_url=platform.url("gateway"), transport=transport, timeout=30.0
    ) as client:
        yield client


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_REQUEST)
    return response.status_code, response.content, headers


async def test_failures_from_ten_addresses_lock_the_account(
    gateway: httpx.AsyncClient, platform: Platform, smtp_sink: SmtpSink
) -> None:
    target, bystander = new_account(), new_account()
    await register(gateway, target)
    await register(gateway, bystander)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client_from(platform, f"127.0.0.{host}"))
            for host in range(2, 13)
        ]
        # A wrong password of an account that is not locked: what every refusal must look like.
        reference = await login(clients[10], bystander["username"], WRONG)
        assert reference.status_code == 401
        # Nine failures from nine addresses (by username and by email): still open.
        for number, client in enumerate(clients[:9]):
            name = target["username"] if number % 2 else target["email"].upper()
            assert (await login(client, name, WRONG)).status_code == 401
        # The tenth, from a tenth address, locks the account.
        tenth = await login(clients[9], target["username"], WRONG)
        assert comparable(tenth) == comparable(reference)
        # Now the right password is refused, byte for byte as a wrong one, from anywhere.
        for client in (clients[10], clients[0]):
            refused = await login(client, target["username"], target["password"])
            assert comparable(refused) == comparable(reference), refused.headers
            locked_wrong = await login(client, target["username"], WRONG)
            assert comparable(locked_wrong) == comparable(reference)
    # Other accounts are not touched.
    assert (await login(gateway, bystander["username"], PASSWORD)).status_code == 200

    # The owner is told, with a reset link; the reset ends the lock.
    message = await email_to(smtp_sink, target["email"], "locked")
    assert target["username"] in plain_text(message)
    token = link_token(message, "reset-password", platform.env["ISSUER"])
    reset = await gateway.post(
        "/api/v1/users/password/reset", json={"token": token, "new_password": NEW}
    )
    assert reset.status_code == 204, reset.text
    assert (await login(gateway, target["username"], NEW)).status_code == 200
    assert (await login(gateway, target["username"], PASSWORD)).status_code == 401
    # The link's token shows in no service's log.
    await asyncio.sleep(0.5)
    for service in ("gateway", "auth", "users", "notifier"):
        assert token not in (platform.log_dir / f"{service}.log").read_text(errors="replace")


async def test_failures_past_the_threshold_send_one_notice(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    """Failures past the threshold are refused, not counted: one lockout, one email."""
    account = new_account()
    await register(gateway, account)
    for _ in range(LOCKOUT_THRESHOLD + 5):
        assert (await login(gateway, account["email"], WRONG)).status_code == 401
    assert (await login(gateway, account["email"], account["password"])).status_code == 401
    await email_to(smtp_sink, account["email"], "locked")
    await asyncio.sleep(1.0)
    notices = [
        m
        for m in smtp_sink.handler.messages
        if account["email"] in str(m["To"]) and "locked" in str(m["Subject"])
    ]
    assert len(notices) == 1
