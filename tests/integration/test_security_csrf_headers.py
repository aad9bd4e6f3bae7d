"""CSRF refusals and the security headers on every kind of answer. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.auth.models import User

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
EXPIRED_FORM = "This form has expired. Reload the page and try again."
Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    client.follow_redirects = False
    return client


# --------------------------------------------------------------------------- CSRF


async def test_login_form_without_csrf_token_is_refused(
    client: AsyncTestClient[Litestar], make_user: Any
) -> None:
    user = await make_user("reception")
    await client.get("/login")

    response = await client.post("/login", data={"username": user.username, "password": PASSWORD})

    assert response.status_code == 403
    assert EXPIRED_FORM in response.text
    assert "set-cookie" not in response.headers or "saldo_session" not in str(
        response.headers.get_list("set-cookie")
    )


async def test_form_post_without_token_is_refused_and_changes_nothing(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, maker: Any
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await client.post(f"/admin/users/{user.id}/disable", data={})

    assert response.status_code == 403
    assert EXPIRED_FORM in response.text
    assert "<html" in response.text  # a page, not a bare error
    async with maker() as db:
        assert (await db.get_one(User, user.id)).active


async def test_a_token_from_another_browser_is_refused(
    client: AsyncTestClient[Litestar], client_for: Any, login: Any, make_user: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    user = await make_user("reception")
    async with client_for(client.app) as other:
        foreign = await csrf(other)

    response = await client.post(f"/admin/users/{user.id}/disable", data={"_csrf_token": foreign})

    assert response.status_code == 403


async def test_htmx_request_without_the_header_gets_a_visible_toast(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await client.post(f"/admin/users/{user.id}/disable", headers={"HX-Request": "true"})

    assert response.status_code == 403
    # base.html's htmx-config swaps 4xx answers; these headers send the toast to #toasts.
    assert response.headers["hx-retarget"] == "#toasts"
    assert response.headers["hx-reswap"] == "beforeend"
    assert 'class="toast toast-error" role="alert"' in response.text
    assert EXPIRED_FORM in response.text
    assert "<html" not in response.text


async def test_base_page_lets_htmx_swap_error_answers_and_sends_the_csrf_header(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf
) -> None:
    await login(client, "reception")
    page = (await client.get("/")).text

    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'', page)
    assert config is not None
    assert '{"code": "422", "swap": true}' in config.group(1)
    assert '{"code": "[45]..", "swap": true, "error": true}' in config.group(1)
    assert f'hx-headers=\'{{"x-csrftoken": "{await csrf(client)}"}}\'' in page
    assert '<div id="toasts"' in page


async def test_htmx_request_with_the_header_passes(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await client.post(
        f"/admin/users/{user.id}/disable",
        headers={"HX-Request": "true", "x-csrftoken": await csrf(client)},
    )

    assert response.status_code == 200


async def test_the_csrf_cookie_is_httponly(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/login")
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("saldo_csrf="))
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()


async def test_pages_read_with_the_cookie_carry_its_token_into_their_forms(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf
) -> None:
    """A GET with the CSRF cookie skips Litestar's Request (app.web.middleware): same token."""
    await login(client, "reception")
    token = await csrf(client)

    page = await client.get("/clients/new")

    assert page.status_code == 200
    assert f'name="_csrf_token" value="{token}"' in page.text
    assert not any(c.startswith("saldo_csrf=") for c in page.headers.get_list("set-cookie"))


@pytest.mark.parametrize(
    "cookie", ['saldo_csrf="{t}"', "saldo_csrf=other; saldo_csrf={t}", "saldo_csrf=a%20b"]
)
async def test_a_quoted_or_repeated_csrf_cookie_is_left_to_litestar(
    client: AsyncTestClient[Litestar], cookie: str
) -> None:
    from litestar.middleware.csrf import generate_csrf_token

    from app.web.middleware import plain_cookie

    token = generate_csrf_token(secret=client.app.state.settings.secret_key)
    header = cookie.format(t=token).encode()
    assert plain_cookie({"headers": [(b"cookie", header)]}, "saldo_csrf") is None  # type: ignore[typeddict-item]
    client.cookies.clear()

    page = await client.get("/login", headers={"cookie": header.decode()})

    assert page.status_code == 200
    expected = "a b" if "%20" in cookie else token  # what Litestar's own parser reads
    assert f'name="_csrf_token" value="{expected}"' in page.text


# --------------------------------------------------------------------------- headers


def assert_security_headers(response: Any, *, no_store: bool = True) -> None:
    csp = response.headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers  # development: plain http
    if no_store:
        assert response.headers["cache-control"] == "no-store"


async def test_headers_on_a_404(client: AsyncTestClient[Litestar], login: Any) -> None:
    anonymous = await client.get("/no/such/page")
    assert anonymous.status_code == 404
    assert_security_headers(anonymous)

    await login(client, "reception")
    logged_in = await client.get("/no/such/page")
    assert logged_in.status_code == 404
    assert_security_headers(logged_in)


async def test_each_security_header_is_sent_once_with_the_callers_request_id(
    client: AsyncTestClient[Litestar], login: Any
) -> None:
    await login(client, "reception")

    response = await client.get("/clients", headers={"X-Request-ID": "desk-42"})

    assert response.status_code == 200
    assert_security_headers(response)
    for name in (
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "cache-control",
        "x-request-id",
    ):
        assert len(response.headers.get_list(name)) == 1, name
    assert response.headers["x-request-id"] == "desk-42"


async def test_headers_on_a_redirect(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/")
    assert response.status_code == 303
    assert_security_headers(response)


async def test_headers_on_an_htmx_fragment(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await client.post(
        f"/admin/users/{user.id}/role",
        data={"role": "accountant"},
        headers={"HX-Request": "true", "x-csrftoken": await csrf(client)},
    )

    assert response.status_code == 200
    assert response.text.lstrip().startswith("<tr")
    assert_security_headers(response)
    assert "HX-Request" in response.headers.get("vary", "")


async def test_headers_on_errors_and_json(client: AsyncTestClient[Litestar], login: Any) -> None:
    assert_security_headers(await client.post("/api/v1/auth/token", json={"username": "x"}))
    assert_security_headers(await client.get("/health"))
    await login(client, "reception")
    forbidden = await client.get("/admin/users")
    assert forbidden.status_code == 403
    assert_security_headers(forbidden)


async def test_headers_on_static_files_which_may_be_cached(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/static/css/app.css")
    assert response.status_code == 200
    assert_security_headers(response, no_store=False)
    assert response.headers.get("cache-control") != "no-store"


def test_no_template_has_inline_script_or_event_handlers() -> None:
    """The CSP forbids inline script; an inline handler would silently do nothing."""
    offenders = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        source = template.read_text()
        for match in re.finditer(r"<script\b[^>]*>", source):
            if "src=" not in match.group(0):
                offenders.append(f"{template.relative_to(ROOT)}: {match.group(0)}")
        for match in re.finditer(r"\son[a-z]+\s*=", source):
            offenders.append(f"{template.relative_to(ROOT)}: {match.group(0).strip()}")
        if "javascript:" in source:
            offenders.append(f"{template.relative_to(ROOT)}: javascript: URL")
    assert offenders == []
