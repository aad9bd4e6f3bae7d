"""The owner uploads the practice's logo; it is kept in the database and printed on receipts."""

from __future__ import annotations

import base64

from app.admin.services import load_settings

# A 1×1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_admin_uploads_a_png_logo_and_can_remove_it(client, login, csrf, maker):
    await login(client, "admin")
    token = await csrf(client)
    response = await client.post(
        "/admin/settings/logo",
        data={"_csrf_token": token},
        files={"logo": ("logo.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    async with maker() as session:
        assert (await load_settings(session)).logo.startswith("data:image/png;base64,")
    page = await client.get("/admin/settings")
    assert 'class="logo-preview"' in page.text
    removed = await client.post(
        "/admin/settings/logo", data={"_csrf_token": token, "remove": "1"}, follow_redirects=False
    )
    assert removed.status_code == 303
    async with maker() as session:
        assert (await load_settings(session)).logo == ""


async def test_an_svg_or_text_file_is_refused_next_to_the_field(client, login, csrf, maker):
    await login(client, "admin")
    token = await csrf(client)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = await client.post(
        "/admin/settings/logo",
        data={"_csrf_token": token},
        files={"logo": ("logo.svg", svg, "image/svg+xml")},
        follow_redirects=False,
    )
    assert response.status_code == 422 and 'id="e-logo"' in response.text
    assert "PNG or JPEG" in response.text
    async with maker() as session:
        assert (await load_settings(session)).logo == ""
