"""The dashboard: the page after login."""

from __future__ import annotations

from litestar import get
from litestar.response import Template


@get("/", name="dashboard")
async def dashboard() -> Template:
    return Template("dashboard/page.html")
