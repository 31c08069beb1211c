"""The account pages in a real headless Chromium, through the gateway (API.md §8): open the link
from the email, set a new password (a mismatch shown first), see success, log in with it; open
the verification link and confirm — with JavaScript on and off, and no CSP violation."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx
import pytest
from common.testing import SmtpSink, headless_chromium
from playwright.async_api import Browser, ConsoleMessage, Page

from .platform import Platform
from .support import (
    BROWSER_MARKS,
    bearer,
    email_to,
    login,
    new_account,
    plain_text,
    register,
    tokens_for,
)

NEW = "a browser-chosen passphrase 2026"
# What Chromium logs for a page answered with an error status (the 422 and 400 pages here).
ERROR_STATUS = "Failed to load resource: the server responded with a status of "

pytestmark = BROWSER_MARKS


def unexpected(problems: list[str]) -> list[str]:
    """Console errors other than an error page's status: a CSP violation, a script error."""
    return [problem for problem in problems if not problem.startswith(ERROR_STATUS)]


def link_in(message: EmailMessage, page: str) -> str:
    text = plain_text(message)
    found = re.search(rf"http://\S+/account/{page}\?token=[A-Za-z0-9_-]{{43}}", text)
    assert found is not None, text
    return found.group(0)


async def open_link(browser: Browser, link: str, javascript: bool, problems: list[str]) -> Page:
    """A new page at `link` (answered 200), its console errors and warnings kept in `problems`."""
    context = await browser.new_context(java_script_enabled=javascript)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    response = await page.goto(link)
    assert response is not None
    assert response.status == 200
    return page


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
async def test_reset_a_password_from_the_email_in_a_browser(
    platform: Platform, gateway: httpx.AsyncClient, smtp_sink: SmtpSink, javascript: bool
) -> None:
    account = new_account()
    await register(gateway, account)
    forgot = await gateway.post("/api/v1/users/password/forgot", json={"email": account["email"]})
    assert forgot.status_code == 202
    link = link_in(await email_to(smtp_sink, account["email"], "Reset"), "reset-password")
    problems: list[str] = []
    async with headless_chromium() as browser:
        page = await open_link(browser, link, javascript, problems)
        await page.get_by_label("New password", exact=True).fill(NEW)
        await page.get_by_label("The new password again").fill(NEW + " typo")
        await page.get_by_role("button", name="Set the new password").click()
        alert = page.locator("#confirm_password-error[role=alert]")
        await alert.wait_for(timeout=15_000)
        assert "not the same" in await alert.inner_text()
        assert (
            await page.get_by_label("The new password again").get_attribute("aria-invalid")
            == "true"
        )
        await page.get_by_label("New password", exact=True).fill(NEW)
        await page.get_by_label("The new password again").fill(NEW)
        await page.get_by_role("button", name="Set the new password").click()
        heading = page.get_by_role("heading", name="Your password was changed")
        await heading.wait_for(timeout=15_000)
        assert await page.get_by_role("status").count() == 1
        if javascript:  # the stylesheet applied (read with the page's own script engine)
            display = await page.evaluate("getComputedStyle(document.body).display")
            assert display == "grid"
    assert unexpected(problems) == []  # no CSP violation, no script error
    assert any("422" in problem for problem in problems)  # the mismatch's page was seen
    assert (await login(gateway, account["username"], NEW)).status_code == 200
    assert (await login(gateway, account["username"], account["password"])).status_code == 401


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
async def test_confirm_an_address_from_the_email_in_a_browser(
    platform: Platform, gateway: httpx.AsyncClient, smtp_sink: SmtpSink, javascript: bool
) -> None:
    account = new_account()
    await register(gateway, account)
    link = link_in(await email_to(smtp_sink, account["email"], "Welcome"), "verify-email")
    problems: list[str] = []
    async with headless_chromium() as browser:
        page = await open_link(browser, link, javascript, problems)
        pair = await tokens_for(gateway, account)
        me = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        assert me.json()["email_verified"] is False  # opening the link verified nothing
        await page.get_by_role("button", name="Confirm my email address").click()
        heading = page.get_by_role("heading", name="Your email address is confirmed")
        await heading.wait_for(timeout=15_000)
        # The back button and a second click: the link is used up.
        await page.goto(link)
        await page.get_by_role("heading", name="This link does not work").wait_for()
    assert unexpected(problems) == []  # no CSP violation, no script error
    me = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email_verified"] is True
