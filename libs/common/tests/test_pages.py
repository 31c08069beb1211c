"""The hosted pages' kit: strict headers, escaped templates, accessible fields, and CSRF tokens
that work once per cookie, purpose and hour only."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from common.pages import (
    CONTENT_SECURITY_POLICY,
    SCRIPT_CONTENT_SECURITY_POLICY,
    CsrfRefused,
    PageAnswer,
    PageError,
    PageKit,
    PageScript,
)
from common.pages.kit import STYLESHEET
from common.settings import ServiceSettings
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = "a deployment secret for the tests"
FORM = "application/x-www-form-urlencoded"
ORIGIN = "http://pages.test"
DEMO = """{% extends "kit/base.html" %}
{% import "kit/forms.html" as forms %}
{% block title %}Demo{% endblock %}
{% block content %}
<h1>Demo for {{ name }}</h1>
<form method="post" action="/form">
{{ forms.csrf(csrf_token) }}
{{ forms.field("password", "New password", type="password", error=error, hint="8 or more",
               autocomplete="new-password") }}
{{ forms.submit("Save") }}
</form>
{% endblock %}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_app(
    templates: Path, clock: Clock, *, secure: bool = False, secret: str = SECRET
) -> Starlette:
    kit = PageKit(
        templates, stylesheet_path="/pages.css", secret=secret, secure=secure, clock=clock
    )

    async def show(request: Request) -> Response:
        return kit.render(
            request,
            "demo.html",
            {
                "name": request.query_params.get("name", "ada"),
                "error": request.query_params.get("error"),
            },
            form="demo:set",
        )

    async def take(request: Request) -> Response:
        purpose = request.query_params.get("purpose", "demo:set")
        try:
            values = await kit.read_form(request, purpose, frozenset({"password"}))
        except PageError as exc:
            return kit.message(request, title="Not saved", message=exc.message, status=exc.status)
        return JSONResponse(values)

    return Starlette(
        routes=[
            Route("/form", show, methods=["GET"]),
            Route("/form", take, methods=["POST"]),
            kit.stylesheet_route(),
        ]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "demo.html").write_text(DEMO)
    return tmp_path


@pytest.fixture
async def client(templates: Path, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(templates, clock))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


def token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


async def open_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/form")
    assert page.status_code == 200
    return token_in(page.text)


async def post(client: httpx.AsyncClient, body: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/form", content=body.encode(), headers={"content-type": FORM, **headers}
    )


async def test_a_page_has_the_strict_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/form")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy == {
        "default-src": "'none'",
        "style-src": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
    }
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


async def test_a_page_has_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    html = (await client.get("/form", params={"error": "Too short."})).text
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()
    assert " style=" not in html.lower()
    assert re.search(r"<[^>]*\son[a-z]+=", html) is None  # no event handler attributes
    assert re.search(r'<link rel="stylesheet" href="/pages\.css\?v=[0-9a-f]{12}">', html)


async def test_context_is_escaped(client: httpx.AsyncClient) -> None:
    html = (await client.get("/form", params={"name": '<script>alert(1)</script>"'})).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in html


async def test_a_field_is_labelled_and_its_error_announced(client: httpx.AsyncClient) -> None:
    plain = (await client.get("/form")).text
    assert '<label for="password">New password</label>' in plain
    assert 'aria-describedby="password-hint"' in plain
    assert "aria-invalid" not in plain
    assert 'role="alert"' not in plain
    invalid = (await client.get("/form", params={"error": "Too short."})).text
    assert 'aria-describedby="password-hint password-error"' in invalid
    assert 'aria-invalid="true"' in invalid
    assert '<p class="error" id="password-error" role="alert">Too short.</p>' in invalid
    assert 'autocomplete="new-password"' in invalid


async def test_the_form_cookie_is_http_only_and_same_site(client: httpx.AsyncClient) -> None:
    page = await client.get("/form")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("gatehouse-csrf=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


async def test_on_https_the_cookie_is_host_prefixed_and_secure(
    templates: Path, clock: Clock
) -> None:
    transport = httpx.ASGITransport(app=make_app(templates, clock, secure=True))
    async with httpx.AsyncClient(transport=transport, base_url="https://pages.test") as http:
        cookie = (await http.get("/form")).headers["set-cookie"]
    assert cookie.startswith("__Host-gatehouse-csrf=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


async def test_a_form_with_its_token_is_read(client: httpx.AsyncClient) -> None:
    token = await open_form(client)
    answer = await post(client, f"csrf_token={token}&password=s3cret+words")
    assert answer.status_code == 200
    assert answer.json() == {"password": "s3cret words"}  # the token is not among the fields
    # Fetch metadata of our own origin passes too.
    again = await post(
        client, f"csrf_token={token}&password=x", **{"sec-fetch-site": "same-origin"}
    )
    assert again.status_code == 200


async def test_the_cookie_nonce_is_kept_so_open_forms_stay_valid(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/form")
    nonce = client.cookies["gatehouse-csrf"]
    second = await client.get("/form")
    assert client.cookies["gatehouse-csrf"] == nonce
    for page in (first, second):
        answer = await post(client, f"csrf_token={token_in(page.text)}&password=x")
        assert answer.status_code == 200


async def test_no_cookie_is_refused(client: httpx.AsyncClient) -> None:
    token = await open_form(client)
    client.cookies.clear()
    answer = await post(client, f"csrf_token={token}&password=x")
    assert answer.status_code == 403
    assert 'role="alert"' in answer.text
    assert "expired" in answer.text


async def test_no_token_is_refused(client: httpx.AsyncClient) -> None:
    await open_form(client)
    assert (await post(client, "password=x")).status_code == 403


async def test_another_cookie_is_refused(client: httpx.AsyncClient) -> None:
    """An attacker who can write a cookie for the origin cannot make a token for it."""
    token = await open_form(client)
    client.cookies.set("gatehouse-csrf", "A" * 43, domain="pages.test")
    assert (await post(client, f"csrf_token={token}&password=x")).status_code == 403


async def test_a_token_of_another_form_is_refused(client: httpx.AsyncClient) -> None:
    token = await open_form(client)
    answer = await client.post(
        "/form",
        params={"purpose": "demo:other"},
        content=f"csrf_token={token}&password=x".encode(),
        headers={"content-type": FORM},
    )
    assert answer.status_code == 403


async def test_a_token_of_another_key_is_refused(
    client: httpx.AsyncClient, templates: Path, clock: Clock
) -> None:
    token = await open_form(client)
    nonce = client.cookies["gatehouse-csrf"]
    other = httpx.ASGITransport(app=make_app(templates, clock, secret="another secret"))
    async with httpx.AsyncClient(transport=other, base_url=ORIGIN) as http:
        http.cookies.set("gatehouse-csrf", nonce, domain="pages.test")
        answer = await post(http, f"csrf_token={token}&password=x")
    assert answer.status_code == 403


async def test_a_token_dies_after_an_hour(client: httpx.AsyncClient, clock: Clock) -> None:
    token = await open_form(client)
    clock.now += 3600
    assert (await post(client, f"csrf_token={token}&password=x")).status_code == 200
    clock.now += 1
    assert (await post(client, f"csrf_token={token}&password=x")).status_code == 403


async def test_a_token_from_the_future_is_refused(client: httpx.AsyncClient, clock: Clock) -> None:
    clock.now += 3600
    token = await open_form(client)
    clock.now -= 3600
    assert (await post(client, f"csrf_token={token}&password=x")).status_code == 403


@pytest.mark.parametrize("site", ["cross-site", "same-site", "evil"])
async def test_a_post_from_another_site_is_refused(client: httpx.AsyncClient, site: str) -> None:
    token = await open_form(client)
    answer = await post(client, f"csrf_token={token}&password=x", **{"sec-fetch-site": site})
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "1.",
        ".abc",
        "1800000000.",
        "1800000000." + "A" * 43,
        "-1." + "A" * 43,
        "9" * 40 + "." + "A" * 43,
        "1800000000." + "A" * 42 + "%25",
        "%00",
        "1800000000.%E2%80%AE" * 5,
    ],
)
async def test_garbage_tokens_are_refused(client: httpx.AsyncClient, garbage: str) -> None:
    await open_form(client)
    answer = await post(client, f"csrf_token={garbage}&password=x")
    assert answer.status_code == 403


async def test_a_tampered_token_is_refused(client: httpx.AsyncClient) -> None:
    token = await open_form(client)
    issued, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert (await post(client, f"csrf_token={issued}.{flipped}&password=x")).status_code == 403
    later = f"{int(issued) + 1}.{mac}"
    assert (await post(client, f"csrf_token={later}&password=x")).status_code == 403


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"password": "x"}', "application/json", 415),
        ("password=x&password=y", FORM, 422),
        ("password=x&extra=1", FORM, 422),
        ("password=%zz", FORM, 422),
        ("password=" + "x" * 20_000, FORM, 413),
    ],
)
async def test_a_malformed_form_is_refused_before_its_token_is_read(
    client: httpx.AsyncClient, body: str, content_type: str, status: int
) -> None:
    await open_form(client)
    answer = await client.post(
        "/form", content=body.encode(), headers={"content-type": content_type}
    )
    assert answer.status_code == status
    assert 'role="alert"' in answer.text


async def test_the_stylesheet_is_served_from_the_origin(client: httpx.AsyncClient) -> None:
    sheet = await client.get("/pages.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert sheet.headers["x-content-type-options"] == "nosniff"
    assert sheet.content == STYLESHEET
    assert b"url(" not in STYLESHEET
    assert b"@import" not in STYLESHEET


def test_a_service_kit_derives_its_key_and_cookie_from_the_settings() -> None:
    plain = PageKit.for_service(
        ServiceSettings(issuer="http://127.0.0.1:8000"), None, stylesheet_path="/s.css"
    )
    tls = PageKit.for_service(
        ServiceSettings(
            issuer="https://id.example.org", internal_client_secret=SecretStr("x" * 20)
        ),
        None,
        stylesheet_path="/s.css",
    )
    assert (plain.cookie_name, plain.secure) == ("gatehouse-csrf", False)
    assert (tls.cookie_name, tls.secure) == ("__Host-gatehouse-csrf", True)
    nonce = "N" * 43
    plain.csrf.check("p", nonce, plain.csrf.issue("p", nonce))
    with pytest.raises(CsrfRefused):
        tls.csrf.check("p", nonce, plain.csrf.issue("p", nonce))


async def test_install_serves_the_stylesheet_and_answers_page_answers(templates: Path) -> None:
    kit = PageKit(templates, stylesheet_path="/s/pages.css", secret=SECRET, secure=False)

    async def failing(request: Request) -> Response:
        raise PageAnswer(kit.message(request, title="No", message="Not done.", status=409))

    app = Starlette(routes=[Route("/fail", failing, methods=["POST"])])
    kit.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        answer = await http.post("/fail")
        sheet = await http.get("/s/pages.css")
    assert answer.status_code == 409
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<p class="notice notice-error" role="alert">Not done.</p>' in answer.text
    assert sheet.content == STYLESHEET


async def test_only_a_page_that_asks_gets_the_kits_one_script(
    templates: Path, clock: Clock
) -> None:
    script = PageScript("/pages.js", b'"use strict";\n')
    kit = PageKit(
        templates, stylesheet_path="/pages.css", secret=SECRET, secure=False, script=script
    )

    async def show(request: Request) -> Response:
        offer = request.query_params.get("script") == "1"
        return kit.render(request, "demo.html", {"name": "ada", "error": None}, script=offer)

    app = Starlette(routes=[Route("/form", show, methods=["GET"]), script.route()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        plain = await http.get("/form")
        assert plain.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "<script" not in plain.text
        scripted = await http.get("/form?script=1")
        assert scripted.headers["content-security-policy"] == SCRIPT_CONTENT_SECURITY_POLICY
        policy = dict(
            part.strip().split(" ", 1) for part in SCRIPT_CONTENT_SECURITY_POLICY.split(";")
        )
        assert policy["script-src"] == "'self'"
        assert policy["connect-src"] == "'self'"
        assert policy["default-src"] == "'none'"
        digest = hashlib.sha256(script.source)
        integrity = "sha256-" + base64.b64encode(digest.digest()).decode()
        tag = f'<script src="/pages.js?v={digest.hexdigest()[:12]}" integrity="{integrity}" defer>'
        assert f"{tag}</script>" in scripted.text
        served = await http.get(script.url)
        assert served.content == script.source
        assert served.headers["content-type"].startswith("text/javascript")
        assert served.headers["x-content-type-options"] == "nosniff"
    without = PageKit(templates, stylesheet_path="/p.css", secret=SECRET, secure=False)
    with pytest.raises(ValueError, match="no script"):
        without.render(Request({"type": "http", "headers": []}), "demo.html", script=True)
