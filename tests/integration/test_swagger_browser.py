"""Swagger UI through the gateway, in a real headless Chromium: log in with Authorize, call
`GET /api/v1/users/me`, see 200."""

from __future__ import annotations

import shutil
import uuid

import httpx
import pytest
from playwright.async_api import async_playwright

from .platform import Platform

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian chromium missing: run make system-deps"
    ),
]


async def test_authorize_then_call_me_in_swagger_ui(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    password = "browser passphrase 2026"
    account = {
        "email": f"swagger.{tag}@example.org",
        "username": f"swagger_{tag}",
        "password": password,
        "full_name": "Swagger User",
    }
    assert (await gateway.post("/api/v1/users/", json=account)).status_code == 201

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            seen: list[str] = []
            page.on("response", lambda r: seen.append(f"{r.request.method} {r.url} {r.status}"))
            await page.goto(platform.url("gateway") + "/api/docs")
            await page.click("button.authorize")
            await page.fill("#oauth_username", account["username"])
            await page.fill("#oauth_password", password)
            await page.click(".auth-btn-wrapper button.authorize")
            # Authorized: the modal offers "Logout" once the login answered with a token.
            modal = page.locator(".modal-ux")
            authorized = modal.get_by_text("Authorized", exact=True)
            try:
                await authorized.wait_for(timeout=15_000)
            except Exception as exc:  # say what the browser saw
                detail = await modal.inner_text()
                raise AssertionError(f"not authorized: {detail!r} {seen}") from exc
            await page.click(".auth-btn-wrapper button.btn-done")
            operation = page.locator('[id^="operations-"][id$="read_me_api_v1_users_me_get"]')
            await operation.locator(".opblock-summary").click()
            await operation.locator("button.try-out__btn").click()
            await operation.locator("button.execute").click()
            live = operation.locator(".live-responses-table tr.response")
            status = live.locator("td.response-col_status").first
            await status.wait_for(timeout=15_000)
            assert (await status.inner_text()).strip().startswith("200"), seen
            body = await operation.locator(".live-responses-table .microlight").first.inner_text()
            assert account["username"] in body
        finally:
            await browser.close()
