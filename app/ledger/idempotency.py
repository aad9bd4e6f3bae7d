"""Idempotent money requests: the same key again returns the first answer.

The key row is inserted in the same transaction as the money it guards, so a
request either leaves both (money written, answer stored) or neither (a
refused or failed request stores no key). A second request with the same key
waits on the unique index (PostgreSQL) or the write lock (SQLite) until the
first one ends, then replays its answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import HotWrite, begin_write
from app.ledger.models import IdempotencyKey
from app.web.i18n import _

MAX_KEY_LENGTH = 128


class KeyReused(ValueError):
    """The key was used before for a request with different content (422)."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def fingerprint(operation: str, content: dict[str, Any]) -> str:
    """A stable hash of what a request asks for, whatever form (UI or API) it came in."""
    canonical = json.dumps({"op": operation, **content}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key:
        return None
    if len(key) > MAX_KEY_LENGTH:
        raise KeyReused(_("The idempotency key is too long (at most 128 characters)."))
    return key


async def run_once(
    session: AsyncSession,
    user_id: int,
    key: str | None,
    request_hash: str,
    work: Callable[[], Awaitable[Answer]],
) -> Answer:
    """Run ``work`` (which writes but does not commit) at most once per (user, key).

    ``work`` raising leaves nothing behind: its writes and the key roll back.
    """
    key = clean_key(key)
    if key is None:
        await begin_write(session)
        answer = await work()
        await session.commit()
        return answer
    for _attempt in range(2):
        await begin_write(session)
        # Claim the key: a twin request in flight makes this wait (PostgreSQL's
        # unique index, SQLite's write lock) and then find its committed row.
        claimed = await _CLAIM[session.bind.dialect.name].scalar(
            session,
            {
                "user_id": user_id,
                "key": key,
                "request_hash": request_hash,
                "created_at": datetime.now(UTC),
            },
        )
        if claimed is None:
            row = await session.scalar(
                select(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
                )
            )
            stored = None if row is None else (row.request_hash, row.status_code, row.response_body)
            await session.rollback()
            if stored is None:
                continue  # the row went away between the claim and the read: claim again
            return _replay(*stored, request_hash)
        try:
            answer = await work()
            await _ANSWER.rowcount(
                session,
                {
                    "key_id": claimed,
                    "status_code": answer.status_code,
                    "response_body": json.dumps(answer.body, default=str),
                },
            )
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        return answer
    raise RuntimeError("idempotency key raced twice")  # pragma: no cover


def _claim(dialect: Any) -> Any:
    """INSERT the key unless it is there, in the dialect that knows ON CONFLICT."""
    values = {c: bindparam(c) for c in ("user_id", "key", "request_hash", "created_at")}
    return (
        dialect.insert(IdempotencyKey)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey.id)
    )


# Built once, per backend: every money request sends them.
_CLAIM = {"postgresql": HotWrite(_claim(postgresql)), "sqlite": HotWrite(_claim(sqlite))}
_ANSWER = HotWrite(
    update(IdempotencyKey)
    .where(IdempotencyKey.id == bindparam("key_id"))
    .values(status_code=bindparam("status_code"), response_body=bindparam("response_body"))
)


def _replay(
    stored_hash: str, status_code: int | None, body: str | None, request_hash: str
) -> Answer:
    if stored_hash != request_hash:
        raise KeyReused(_("This idempotency key was already used for a different request."))
    return Answer(status_code or 200, json.loads(body or "{}"), replayed=True)
