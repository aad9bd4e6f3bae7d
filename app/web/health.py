"""GET /health for load balancers and uptime checks."""

from __future__ import annotations

import asyncio
import logging

from litestar import Response, get
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("saldo.health")


@get("/health", opt={"public": True}, tags=["health"], summary="Database status")
async def health(db_engine: AsyncEngine) -> Response[dict[str, str]]:
    try:
        async with asyncio.timeout(3):
            async with db_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is "unavailable"
        log.warning("health check failed: %s", type(exc).__name__)
        return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": "ok"}, status_code=200)
