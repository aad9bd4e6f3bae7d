"""Clients: who they are, how to find them, and what their page shows.

The rules for a client's identity live here: names compared without case,
accents or extra spaces; phones kept as typed plus their international digits;
e-mails checked for syntax. Money on a client's account is the ledger's
business; this module only reads it for display.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers
from advanced_alchemy.exceptions import NotFoundError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Service, Staff
from app.admin.services import load_settings
from app.clients.models import Client
from app.db import HotRead, begin_write
from app.ledger.models import Charge, Entry, Payment, Refund
from app.statements.models import PeriodStatement
from app.web.i18n import _

SEARCH_LIMIT = 20  # rows the search box shows
HISTORY_PAGE_SIZE = 25
NAME_MAX, PHONE_MAX, EMAIL_MAX, NOTES_MAX = 200, 40, 254, 5000

# A word made of digits and the punctuation people type in phone numbers.
_PHONE_WORD = re.compile(r"^[\d\s().+\-/]*\d[\d\s().+\-/]*$")


def search_key(text: str) -> str:
    """Lower-case, accent-free, whitespace-collapsed: "  João  CONCEIÇÃO" -> "joao conceicao"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


def search_fields(name: str, phone_digits: str | None, email: str | None) -> tuple[str, str]:
    """The ``(name_key, search_text)`` pair stored with every client.

    ``search_text`` holds everything the search box matches: the name key,
    the phone's international digits and the e-mail, normalised like a query.
    """
    name_key = search_key(name)[:NAME_MAX]
    parts = [name_key, phone_digits or "", search_key(email or "")]
    return name_key, " ".join(p for p in parts if p)


def query_words(query: str) -> list[str]:
    """The words of a search as they appear in ``search_text``.

    A word that looks like part of a phone number ("(11)", "99999-0000")
    becomes its digits, so it matches however the number was typed.
    """
    words = []
    for raw in (query or "").split():
        word = re.sub(r"\D", "", raw) if _PHONE_WORD.match(raw) else search_key(raw)
        if word:
            words.append(word)
    return words


def _contains(word: str) -> str:
    """A LIKE pattern for "contains ``word``", with the user's % and _ taken literally."""
    escaped = word.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


# What a list of search results shows of each client (rows, not ORM objects: the
# search box asks at every keystroke, and loading objects cost a fifth of it).
SUMMARY_COLUMNS = (
    Client.id,
    Client.name,
    Client.phone,
    Client.active,
    (Client.credit_cents - Client.owed_cents).label("balance_cents"),
)


# SQLite's trigram index of clients.search_text (FTS5, migration 0008).
_FTS = table("clients_search", column("rowid"))
_FTS_MATCH = literal_column("clients_search").op("MATCH")(bindparam("match", type_=String))


@lru_cache(maxsize=64)
def _search_statements(
    words: int,
    archived: bool,
    summary: bool = False,
    walk: bool = True,
    fts: bool = False,
    trigrams: bool = True,
) -> tuple[Select[Any], Select[Any]]:
    """The search's page and count statements for ``words`` words, built once.

    The search runs at every keystroke; building the statement cost more CPU
    than sending it. Parameters: ``w0``… (LIKE patterns), ``limit``, ``offset``.
    The page's ids come first, from ix_clients_active_name alone (name order and
    search text are both in it); then only those rows are read from the table:
    whole clients, or with ``summary`` the columns a list of results shows.
    Without ``walk`` the page is ordered by an expression the name index cannot
    give, so PostgreSQL cannot walk that index in name order and finds the
    matches through the trigram index instead, then sorts them (see ``search``).
    With ``fts`` (SQLite) the candidates come from SQLite's trigram index first
    (parameter ``match``: see ``_fts_match``); the LIKE conditions still decide.
    Without ``trigrams`` (no word of 3+ characters) the LIKE is on an expression
    no index holds, so the name index is walked whatever plan PostgreSQL keeps.
    """
    text: Any = Client.search_text
    if not trigrams:
        # pg_trgm finds nothing to look up in "%an%", so a plan through the trigram
        # index reads all of it and rechecks every client (51 ms at 50,000 clients).
        # After five runs PostgreSQL may keep a prepared statement's generic plan,
        # and for an unknown pattern that plan is the trigram index: first and
        # second keystrokes took 51 ms. Walking finds a page in 0.1 ms, or reads
        # the whole name index in 10 ms when nobody matches (docs/BENCHMARKS.md,
        # 2026-12-05, mid-morning).
        text = Client.search_text.op("||", return_type=String)(literal_column("''"))
    conditions = [text.like(bindparam(f"w{i}", type_=String), escape="/") for i in range(words)]
    if fts:
        conditions.append(Client.id.in_(select(_FTS.c.rowid).where(_FTS_MATCH)))
    if not archived:
        # With ``fts``, "active IS NOT 0" (the same, active is never NULL) so SQLite
        # cannot walk ix_clients_active_name probing the matches: it reads just the
        # matches by primary key, then sorts them (6 ms -> 0.1 ms for a name nobody has).
        conditions.append(Client.active.is_not(False) if fts else Client.active)
    # name_key || '' sorts exactly like name_key; it only hides the index order.
    order = Client.name_key if walk else Client.name_key.op("||")(literal_column("''"))
    page = (
        select(Client.id, Client.name_key)
        .where(*conditions)
        .order_by(order, Client.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery()
    )
    shown = SUMMARY_COLUMNS if summary else (Client,)
    rows = select(*shown).join(page, page.c.id == Client.id).order_by(page.c.name_key, page.c.id)
    count = select(func.count()).select_from(Client).where(*conditions)
    return rows, count


@lru_cache(maxsize=64)
def _summary_read(words: int, archived: bool, walk: bool, fts: bool, trigrams: bool) -> HotRead:
    """The search box's and picker's rows, asked at every keystroke: see HotRead."""
    statements = _search_statements(words, archived, True, walk, fts, trigrams)
    return HotRead(statements[0])


def _walks(words: list[str]) -> bool:
    """Whether a search should walk the name index in name order (see ``search``)."""
    return max(map(len, words), default=0) <= 3


def _has_trigrams(words: list[str]) -> bool:
    """Whether a trigram index can narrow a search: a word of 3+ characters."""
    return max(map(len, words), default=0) >= 3


def _fts_match(words: list[str]) -> str:
    """The FTS5 query for SQLite's trigram index: every word of 3+ characters as a phrase.

    A trigram phrase matches wherever the word occurs inside the text, as LIKE
    does; shorter words have no trigram and are left to LIKE alone.
    """
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in words if len(w) >= 3)


def normalise_phone(phone: str, country_code: str) -> str:
    """International digits of a phone as typed: "(11) 99999-0000" -> "5511999990000" in Brazil.

    A number without "+" is read in the practice's country. Refuses (ValueError
    with the message to show) anything that is not a valid number.
    """
    region = phonenumbers.region_code_for_country_code(int(country_code or "0"))
    try:
        number = phonenumbers.parse(phone, None if region == "ZZ" else region)
    except phonenumbers.NumberParseException:
        raise ValueError(_("This does not look like a phone number.")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            _("This is not a valid phone number. Include the area code, or + and the country code.")
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


@dataclass
class ClientInput:
    """A client's details as a person typed them."""

    name: str = ""
    phone: str = ""
    email: str = ""
    notes: str = ""


@dataclass
class ClientPage:
    """One page of search results."""

    items: list[Any]  # clients, or rows of SUMMARY_COLUMNS (search(summary=True))
    # Only counted when asked for (the API); the search box uses ``more`` instead.
    total: int | None
    more: bool


@dataclass
class HistoryPage:
    entries: list[Entry]
    page: int
    pages: int
    total: int


@dataclass
class ClientOverview:
    """What the client page shows."""

    client: Client
    open_charges: list[Any]  # rows: Charge, service_name, staff_name
    history: HistoryPage
    # No money records at all: an admin may delete the client (entered by mistake).
    deletable: bool


class ClientError(ValueError):
    """Input that cannot be saved: field name -> message to show next to it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid client")
        self.errors = errors


class DuplicateName(ClientError):
    """A new client's name equals an existing one's (ignoring case, accents and spaces)."""

    def __init__(self, existing: list[Client]) -> None:
        super().__init__({"name": _("A client with this name already exists.")})
        self.existing = existing


class ClientHasMoney(ValueError):
    """A client with money records cannot be deleted, only archived."""


@dataclass
class _Clean:
    name: str
    phone: str | None
    phone_digits: str | None
    email: str | None
    notes: str | None
    errors: dict[str, str] = field(default_factory=dict)


class ClientService:
    """Create, change, archive, find and show clients. Every write commits its own transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, client_id: int) -> Client:
        """The client with this id, archived or not. Raises NotFoundError."""
        client = await self.session.get(Client, client_id)
        if client is None:
            raise NotFoundError(f"client {client_id} not found")
        return client

    async def search(
        self,
        query: str = "",
        *,
        archived: bool = False,
        limit: int = SEARCH_LIMIT,
        offset: int = 0,
        count: bool = False,
        summary: bool = False,
    ) -> ClientPage:
        """Clients whose search text contains every word of ``query``, ordered by name.

        Case and accents are ignored; digit words match phone digits. Archived
        clients are left out unless ``archived`` is true (then they are listed
        with the others). One query for the rows (one more row than asked tells
        whether there are more), plus one count when ``count`` is true. With
        ``summary`` the items are rows of SUMMARY_COLUMNS (id, name, phone,
        active, balance_cents) instead of clients.
        """
        words = query_words(query)
        # PostgreSQL's planner assumes the matches of a word are spread evenly
        # through name order, but a first-name prefix clusters them (every "nico…"
        # sits among the N's), so walking the name index read thousands of entries
        # for a page. The trigram index is the better road once a word has 4+
        # characters; up to 3 (no trigram at all below 3, thousands of matches at 3)
        # the walk finds a page quickly. Same rows, same order, either way; on
        # 3,000 searches of 50,000 clients PostgreSQL's time per search and its
        # p99 fell by a quarter (docs/BENCHMARKS.md, 2026-12-04, early morning).
        # SQLite has no pg_trgm: its trigram index is the FTS5 table clients_search
        # (migration 0008), asked for the matches' ids first. At 50,000 clients a
        # search's CPU (app and SQLite) fell from 5.3-6.0 to 3.2-3.5 ms and 32
        # connections got 489-493 searches/s instead of 326-353
        # (docs/BENCHMARKS.md, 2026-12-04, evening).
        sqlite = self.session.bind.dialect.name == "sqlite"
        walk = _walks(words)
        fts = not walk and sqlite
        # SQLite plans each statement with its pattern, and has no index on
        # search_text to keep out (see _search_statements).
        trigrams = sqlite or _has_trigrams(words)
        rows_stmt, count_stmt = _search_statements(
            len(words), archived, summary, walk, fts, trigrams
        )
        params: dict[str, Any] = {f"w{i}": _contains(w) for i, w in enumerate(words)}
        if fts:
            params["match"] = _fts_match(words)
        page = {**params, "limit": limit + 1, "offset": offset}
        if summary:
            read = _summary_read(len(words), archived, walk, fts, trigrams)
            rows = await read.all(self.session, page)
        else:
            rows = list((await self.session.scalars(rows_stmt, page)).all())
        total = await self.session.scalar(count_stmt, params) if count else None
        return ClientPage(items=rows[:limit], total=total, more=len(rows) > limit)

    async def same_name(self, name: str) -> list[Client]:
        """Clients (archived too) whose name equals ``name`` ignoring case, accents and spaces."""
        stmt = select(Client).where(Client.name_key == search_key(name)).order_by(Client.id)
        return list(await self.session.scalars(stmt.limit(5)))

    async def create(self, data: ClientInput, *, allow_duplicate: bool = False) -> Client:
        """Add a client.

        Refuses with ClientError (nothing written) an empty or too long name, a
        phone that is not a valid number in the practice's country (or with
        its own "+" code), and an e-mail whose syntax is wrong. Refuses with
        DuplicateName a name that another client already has, unless
        ``allow_duplicate`` (the person saw the warning and confirmed).
        """
        clean = await self._clean(data)
        if clean.errors:
            raise ClientError(clean.errors)
        if not allow_duplicate and (existing := await self.same_name(clean.name)):
            raise DuplicateName(existing)
        await begin_write(self.session)
        client = Client(credit_cents=0, owed_cents=0, active=True)
        self._apply(client, clean)
        self.session.add(client)
        await self.session.commit()
        return client

    async def update(self, client_id: int, data: ClientInput) -> Client:
        """Change a client's details, with the same checks as ``create`` (no duplicate warning).

        Refuses an anonymised client: their personal data is not taken in again.
        """
        clean = await self._clean(data)
        if clean.errors:
            raise ClientError(clean.errors)
        await begin_write(self.session)
        client = await self.get(client_id)
        if client.anonymised_at is not None:
            await self.session.rollback()
            raise ClientError({"name": _("This client was anonymised: their details stay erased.")})
        self._apply(client, clean)
        await self.session.commit()
        return client

    async def archive(self, client_id: int) -> Client:
        """Hide a client from searches. Their records and balance stay as they are."""
        return await self._set_active(client_id, False)

    async def unarchive(self, client_id: int) -> Client:
        """Bring an archived client back into searches."""
        return await self._set_active(client_id, True)

    async def delete(self, client_id: int) -> None:
        """Remove a client entered by mistake.

        Refuses with ClientHasMoney a client with any charge, payment, refund,
        journal entry or closed-month statement: those are archived instead.
        """
        await begin_write(self.session)
        client = await self.get(client_id)
        if await self.has_money_records(client_id):
            await self.session.rollback()
            raise ClientHasMoney(_("This client has money records: archive them instead."))
        await self.session.delete(client)
        await self.session.commit()

    async def has_money_records(self, client_id: int) -> bool:
        """Whether anything in the ledger or a closed month refers to this client."""
        checks = [
            exists().where(model.client_id == client_id)
            for model in (Entry, Charge, Payment, Refund, PeriodStatement)
        ]
        return bool(await self.session.scalar(select(or_(*checks))))

    async def overview(self, client_id: int, page: int = 1) -> ClientOverview:
        """The client, their open charges oldest first, and one page of their history."""
        client = await self.get(client_id)
        history = await self.history(client_id, page)
        return ClientOverview(
            client=client,
            open_charges=await self.open_charges(client_id),
            history=history,
            deletable=history.total == 0 and not await self.has_money_records(client_id),
        )

    async def open_charges(self, client_id: int) -> list[Any]:
        """Open and partly paid charges, oldest first, with their service and staff names."""
        rows = await self.session.execute(
            select(Charge, Service.name.label("service_name"), Staff.name.label("staff_name"))
            .outerjoin(Service, Service.id == Charge.service_id)
            .outerjoin(Staff, Staff.id == Charge.staff_id)
            .where(Charge.client_id == client_id, Charge.status.in_(("open", "partial")))
            .order_by(Charge.date, Charge.id)
        )
        return list(rows)

    async def history(
        self, client_id: int, page: int = 1, per_page: int = HISTORY_PAGE_SIZE
    ) -> HistoryPage:
        """The client's journal entries, newest first, ``per_page`` at a time."""
        total = (
            await self.session.scalar(
                select(func.count()).select_from(Entry).where(Entry.client_id == client_id)
            )
            or 0
        )
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        entries = await self.session.scalars(
            select(Entry)
            .where(Entry.client_id == client_id)
            .order_by(Entry.effective_date.desc(), Entry.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return HistoryPage(entries=list(entries), page=page, pages=pages, total=total)

    async def _set_active(self, client_id: int, active: bool) -> Client:
        await begin_write(self.session)
        client = await self.get(client_id)
        client.active = active
        await self.session.commit()
        return client

    async def _clean(self, data: ClientInput) -> _Clean:
        """Trim, check and normalise typed details; problems go into ``errors``."""
        errors: dict[str, str] = {}
        name = " ".join((data.name or "").split())
        if not name:
            errors["name"] = _("Enter the client's name.")
        elif len(name) > NAME_MAX:
            errors["name"] = _("Use at most %(n)d characters.", n=NAME_MAX)

        phone = (data.phone or "").strip() or None
        phone_digits = None
        if phone is not None:
            if len(phone) > PHONE_MAX:
                errors["phone"] = _("Use at most %(n)d characters.", n=PHONE_MAX)
            else:
                settings = await load_settings(self.session)
                try:
                    phone_digits = normalise_phone(phone, settings.phone_country_code)
                except ValueError as exc:
                    errors["phone"] = str(exc)

        email = (data.email or "").strip() or None
        if email is not None:
            try:
                email = validate_email(email, check_deliverability=False).normalized
            except EmailNotValidError:
                errors["email"] = _("Enter a valid e-mail address, like name@example.com.")
            else:
                if len(email) > EMAIL_MAX:
                    errors["email"] = _("Use at most %(n)d characters.", n=EMAIL_MAX)

        notes = (data.notes or "").strip() or None
        if notes is not None and len(notes) > NOTES_MAX:
            errors["notes"] = _("Use at most %(n)d characters.", n=NOTES_MAX)
        return _Clean(name, phone, phone_digits, email, notes, errors)

    @staticmethod
    def _apply(client: Client, clean: _Clean) -> None:
        client.name = clean.name
        client.phone = clean.phone
        client.phone_digits = clean.phone_digits
        client.email = clean.email
        client.notes = clean.notes
        client.name_key, client.search_text = search_fields(
            clean.name, clean.phone_digits, clean.email
        )
