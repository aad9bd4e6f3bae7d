"""Reception finds, adds and looks after clients: pages, search and the client page.

Runs on SQLite and PostgreSQL (the ``db_url`` fixture is parametrized).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.services import save_settings
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import ClientInput, ClientService
from app.ledger.models import Charge, Entry

Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture(autouse=True)
def answers_as_sent(client: AsyncTestClient[Any]) -> None:
    """See each answer itself (303s included), as the login fixture expects."""
    client.follow_redirects = False


async def use_country(maker: async_sessionmaker[AsyncSession], admin: User, code: str) -> None:
    async with maker() as session:
        await save_settings(session, {"phone_country_code": code}, actor=admin, ip=None)


async def add(maker: async_sessionmaker[AsyncSession], name: str, **fields: str) -> Client:
    async with maker() as session:
        return await ClientService(session).create(
            ClientInput(name=name, **fields), allow_duplicate=True
        )


async def count_clients(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(Client)) or 0


def result_names(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m)).strip()
        for m in re.findall(r'<span class="client-name">(.*?)</span>\s*<span', html, re.S)
    ]


async def post_form(
    client: AsyncTestClient[Any], csrf: Csrf, path: str, data: dict[str, str]
) -> Any:
    return await client.post(path, data={**data, "_csrf_token": await csrf(client)})


# --------------------------------------------------------------------------- adding a client


async def test_reception_adds_a_client_and_lands_on_their_page(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    await use_country(maker, admin, "55")
    await login(client, "reception")
    response = await post_form(
        client,
        csrf,
        "/clients",
        {"name": "  João   Conceição ", "phone": "(11) 99999-0000", "email": "Joao@Example.COM"},
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/clients/\d+", location)

    async with maker() as session:
        stored = await session.scalar(select(Client))
    assert stored.name == "João Conceição"
    assert stored.phone == "(11) 99999-0000"
    assert stored.phone_digits == "5511999990000"
    assert stored.email == "Joao@example.com"
    assert stored.name_key == "joao conceicao"
    assert stored.search_text == "joao conceicao 5511999990000 joao@example.com"

    page = await client.get(location)
    assert page.status_code == 200
    assert "João Conceição" in page.text
    assert f"/charges/new?client_id={stored.id}" in page.text
    assert f"/payments/new?client_id={stored.id}" in page.text


async def test_phone_with_plus_keeps_its_own_country(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    admin = await login(client, "admin")
    await use_country(maker, admin, "55")
    saved = await add(maker, "Alice Smith", phone="+1 (212) 555-0100")
    assert saved.phone_digits == "12125550100"


async def test_invalid_phone_and_email_are_shown_next_to_the_fields_and_nothing_is_written(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "reception")
    response = await post_form(
        client, csrf, "/clients", {"name": "Ana", "phone": "123", "email": "ana@"}
    )
    assert response.status_code == 422
    assert 'id="e-phone"' in response.text
    assert 'id="e-email"' in response.text
    assert "valid e-mail" in response.text
    assert 'value="ana@"' in response.text  # what was typed stays in the form
    assert await count_clients(maker) == 0


async def test_name_is_required(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "reception")
    response = await post_form(client, csrf, "/clients", {"name": "   "})
    assert response.status_code == 422
    assert 'id="e-name"' in response.text
    assert await count_clients(maker) == 0


async def test_same_name_warns_links_to_the_existing_client_and_needs_confirmation(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    existing = await add(maker, "Maria José da Silva")
    await login(client, "reception")

    warned = await post_form(client, csrf, "/clients", {"name": "maria  JOSE da silva"})
    assert warned.status_code == 422
    assert 'id="duplicate-warning"' in warned.text
    assert f'href="/clients/{existing.id}"' in warned.text
    assert 'name="confirm_duplicate"' in warned.text
    assert await count_clients(maker) == 1

    confirmed = await post_form(
        client, csrf, "/clients", {"name": "maria  JOSE da silva", "confirm_duplicate": "1"}
    )
    assert confirmed.status_code == 303
    assert await count_clients(maker) == 2


async def test_new_client_form_is_prefilled_from_a_search_without_results(
    client: AsyncTestClient[Any], login: Any
) -> None:
    await login(client, "reception")
    page = await client.get("/clients", params={"q": "Zélia"})
    assert "/clients/new?name=Z%C3%A9lia" in page.text
    form = await client.get("/clients/new", params={"name": "Zélia"})
    assert 'value="Zélia"' in form.text


async def test_editing_a_client_renormalises_what_search_reads(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    saved = await add(maker, "Old Name")
    await login(client, "reception")
    form = await client.get(f"/clients/{saved.id}/edit")
    assert 'value="Old Name"' in form.text
    response = await post_form(
        client,
        csrf,
        f"/clients/{saved.id}/edit",
        {"name": "Ângela Nova", "notes": "Prefers mornings"},
    )
    assert response.status_code == 303
    async with maker() as session:
        stored = await session.get_one(Client, saved.id)
    assert (stored.name, stored.name_key, stored.notes) == (
        "Ângela Nova",
        "angela nova",
        "Prefers mornings",
    )

    bad = await post_form(client, csrf, f"/clients/{saved.id}/edit", {"name": "", "email": "x"})
    assert bad.status_code == 422
    assert 'id="e-name"' in bad.text and 'id="e-email"' in bad.text


# --------------------------------------------------------------------------- search


async def test_search_ignores_case_and_accents_and_matches_any_part(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    admin = await login(client, "admin")
    await use_country(maker, admin, "55")
    await add(maker, "João Conceição", phone="+55 11 99999-0000", email="jc@clinica.com.br")
    await add(maker, "Joana Prado", phone="(21) 3333-4444")
    await add(maker, "Pedro Álvares", email="pedro@mail.com")

    async def names(q: str) -> list[str]:
        response = await client.get("/clients", params={"q": q})
        assert response.status_code == 200
        return result_names(response.text)

    assert await names("joao") == ["João Conceição"]
    assert await names("conceicao") == ["João Conceição"]
    assert await names("CONCEIÇÃO") == ["João Conceição"]
    assert await names("ceiç") == ["João Conceição"]  # part of a word
    assert await names("conc jo") == ["João Conceição"]  # every word, any order
    assert await names("1199") == ["João Conceição"]  # phone digits
    assert await names("99999-0000") == ["João Conceição"]  # typed like a phone
    assert await names("clinica") == ["João Conceição"]  # e-mail
    assert await names("jo") == ["Joana Prado", "João Conceição"]  # ordered by name
    assert await names("alvares") == ["Pedro Álvares"]
    assert await names("3333") == ["Joana Prado"]
    assert await names("zzz") == []
    assert len(await names("")) == 3


async def test_both_ways_of_searching_give_the_same_page(maker: Any) -> None:
    """A search walks the name index or finds its matches through a trigram index
    (PostgreSQL's pg_trgm, SQLite's FTS5 table), depending on its words
    (``ClientService.search``): every statement must return the same rows in the
    same order, page by page, ties included."""
    from app.clients.services import _contains, _fts_match, _search_statements, query_words

    for name in [
        "Nicolas Prado", "Ana Nicolau", "nicole", "Nícolas Prado", "Bruno Nico",
        "Nicolas Prado", "Zé Nicolino", "Ana Prado", "Marina Nicolosi", "Nico",
        'Ana "Nica" Prado', "Ana 100% Nicola",
    ]:  # fmt: skip
        await add(maker, name)
    await add(maker, "Nicolau Arquivado")
    async with maker() as session:
        await session.execute(update(Client).where(Client.name == "Nicolau Arquivado").values(
            active=False
        ))  # fmt: skip
        await session.commit()
        # (walk, fts, trigrams): the LIKE on an expression no index holds gives the same too.
        ways = [(True, False, True), (False, False, True), (True, False, False)]
        if session.bind.dialect.name == "sqlite":
            ways.append((False, True, True))
        queries = ["nico", "nicolas prado", "prado", "ana", "a", "nic ol", "zzzz", '"nica"']
        for q in [*queries, "100%", "nicolau", "arquivado"]:
            words = query_words(q)
            for archived in (False, True):
                for offset in (0, 2, 4):
                    params = {f"w{i}": _contains(w) for i, w in enumerate(words)}
                    params.update(limit=3, offset=offset, match=_fts_match(words))
                    pages = []
                    for walk, fts, trigrams in ways:
                        if fts and not params["match"]:
                            continue  # no word of 3+ characters: never asked of the index
                        statements = _search_statements(
                            len(words), archived, True, walk, fts, trigrams
                        )
                        stmt = statements[0]
                        rows = (await session.execute(stmt, params)).all()
                        pages.append([tuple(r) for r in rows])
                    assert all(page == pages[0] for page in pages), (q, archived, offset)
        every = (await session.execute(_search_statements(1, False, True, False)[0], {
            "w0": _contains("nico"), "limit": 20, "offset": 0,
        })).all()  # fmt: skip
        assert [r.name for r in every] == sorted(
            [r.name for r in every], key=lambda n: n.lower().replace("í", "i")
        )
        assert len(every) == 10


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_first_keystrokes_never_read_the_whole_trigram_index(maker: Any) -> None:
    """For "a" or "an" pg_trgm has no trigram to look up, so a plan through the
    trigram index reads all of it and rechecks every client. PostgreSQL took
    that plan once it kept a generic plan for the search (planned without the
    pattern): the statement must not let the index serve such a search."""
    from app.clients.services import (
        _contains,
        _has_trigrams,
        _search_statements,
        _walks,
        query_words,
    )
    from app.db import HotRead

    for name in ("Ana Souza", "Bruno Prado", "Carla Lima", "Diego Ferraz"):
        await add(maker, name)
    async with maker() as session:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        # The plan PostgreSQL keeps after five runs, with only bitmap scans left at
        # their cost: the trigram index wins wherever it can serve.
        settings = ("plan_cache_mode", "enable_seqscan", "enable_indexscan", "enable_indexonlyscan")
        await driver.execute(
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"
            "SET enable_indexscan = off; SET enable_indexonlyscan = off;"
        )
        prepared: list[str] = []

        async def plan(q: str, which: int, trigrams: bool | None = None) -> str:
            words = query_words(q)
            if trigrams is None:
                trigrams = _has_trigrams(words)
            # With archived clients in (no condition on active) only the LIKE can
            # narrow the rows through an index.
            stmts = _search_statements(len(words), True, True, _walks(words), False, trigrams)
            compiled = HotRead(stmts[which])._compile(session.bind.dialect)
            params = {f"w{i}": _contains(w) for i, w in enumerate(words)}
            args = compiled.args({**params, "limit": 21, "offset": 0})
            name = f"search_{len(prepared)}"
            prepared.append(name)
            await driver.execute(f"PREPARE {name} AS {compiled.sql}")
            # EXECUTE takes no binds: the test's own patterns and numbers, written out.
            values = ", ".join(str(a) if isinstance(a, int) else f"'{a}'" for a in args)
            return "\n".join(r[0] for r in await driver.fetch(f"EXPLAIN EXECUTE {name}({values})"))

        for q in ("a", "an", "an so", "12"):
            for which in (0, 1):  # the page, and its count
                assert "ix_clients_search_trgm" not in await plan(q, which), (q, which)
        # The trap is real: with the LIKE on the indexed column the plan takes it,
        # and a word with trigrams still may.
        assert "ix_clients_search_trgm" in await plan("an", 0, trigrams=True), "control"
        assert "ix_clients_search_trgm" in await plan("souza", 0), "souza"
        await driver.execute("".join(f"DEALLOCATE {name};" for name in prepared))
        await driver.execute("".join(f"RESET {setting};" for setting in settings))


async def test_search_finds_clients_by_what_they_are_called_now(maker: Any) -> None:
    """A new name, e-mail or phone is found at once and the old one no longer is,
    whichever index the search asks (on SQLite the trigram index is a table of its
    own, kept by triggers); a deleted client is gone from it too."""
    async with maker() as session:
        service = ClientService(session)
        kept = await service.create(ClientInput(name="Rosalinda Ferraz", email="rosa@mail.com"))
        typo = await service.create(ClientInput(name="Gertrudes Errada"))

        async def found(q: str, archived: bool = False) -> list[int]:
            return [c.id for c in (await service.search(q, archived=archived)).items]

        assert await found("rosalinda") == [kept.id]
        assert await found("gertrudes") == [typo.id]
        await service.update(
            kept.id, ClientInput(name="Rosângela Ferraz", phone="+55 11 98765-4321")
        )
        assert await found("rosalinda") == [] and await found("rosa@mail") == []
        assert await found("rosangela ferraz") == [kept.id]
        assert await found("98765") == [kept.id]
        await service.archive(kept.id)
        assert await found("rosangela") == []
        assert await found("rosangela", archived=True) == [kept.id]
        await service.unarchive(kept.id)
        assert await found("rosangela") == [kept.id]
        await service.delete(typo.id)
        assert await found("gertrudes", archived=True) == []
        assert await found("ferraz") == [kept.id]


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
async def test_upgrading_sqlite_indexes_the_clients_already_there(
    empty_db_url: str, settings_for: Callable[..., Any]
) -> None:
    """Migration 0008 builds SQLite's trigram index over the clients a practice
    already has, and taking it back leaves the schema of 0007."""
    import sqlite3

    from app.clients.services import search_fields
    from app.db import create_engine, session_maker
    from tests.conftest import migrate

    migrate(empty_db_url, "0007")
    path = empty_db_url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        for name in ("Valdomiro Antunes", "Leocádia Antunes"):
            name_key, search_text = search_fields(name, None, None)
            conn.execute(
                "INSERT INTO clients (name, name_key, search_text, active, credit_cents, "
                "owed_cents, created_at, updated_at) VALUES (?, ?, ?, 1, 0, 0, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                (name, name_key, search_text),
            )
    migrate(empty_db_url)
    engine = create_engine(settings_for(empty_db_url))
    try:
        async with session_maker(engine)() as session:
            service = ClientService(session)
            found = await service.search("antunes")
            assert [c.name for c in found.items] == ["Leocádia Antunes", "Valdomiro Antunes"]
            assert [c.name for c in (await service.search("valdo")).items] == ["Valdomiro Antunes"]
    finally:
        await engine.dispose()
    migrate(empty_db_url, "0007", down=True)
    with sqlite3.connect(path) as conn:
        left = conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'clients_search%'"
        ).fetchall()
    assert left == []


async def test_search_takes_like_wildcards_literally(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    await add(maker, "Ana Lima")
    await add(maker, "Bia 100% Silva")
    await login(client, "reception")
    assert result_names((await client.get("/clients", params={"q": "%"})).text) == [
        "Bia 100% Silva"
    ]
    assert result_names((await client.get("/clients", params={"q": "_"})).text) == []
    assert result_names((await client.get("/clients", params={"q": "a_a"})).text) == []


async def test_archived_clients_only_appear_when_asked(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    kept = await add(maker, "Carla Active")
    gone = await add(maker, "Carla Archived")
    await login(client, "reception")
    response = await post_form(client, csrf, f"/clients/{gone.id}/archive", {})
    assert response.status_code == 303

    hidden = await client.get("/clients", params={"q": "carla"})
    assert result_names(hidden.text) == ["Carla Active"]
    shown = await client.get("/clients", params={"q": "carla", "archived": "true"})
    assert result_names(shown.text) == ["Carla Active", "Carla Archived Archived"]
    assert "Show archived" in shown.text and "checked" in shown.text

    page = await client.get(f"/clients/{gone.id}")
    assert "/unarchive" in page.text
    assert f"/charges/new?client_id={gone.id}" not in page.text
    await post_form(client, csrf, f"/clients/{gone.id}/unarchive", {})
    again = await client.get("/clients", params={"q": "carla"})
    assert len(result_names(again.text)) == 2
    assert kept.id != gone.id


async def test_search_shows_at_most_twenty_rows(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    async with maker() as session:
        service = ClientService(session)
        for n in range(25):
            await service.create(ClientInput(name=f"Cliente {n:02d}"))
    await login(client, "reception")
    response = await client.get("/clients", params={"q": "cliente"})
    names = result_names(response.text)
    assert names == [f"Cliente {n:02d}" for n in range(20)]
    assert "Showing the first 20 clients" in response.text


async def test_typing_swaps_only_the_results_and_the_url_follows(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    await add(maker, "Rosa Menezes")
    await login(client, "reception")

    full = await client.get("/clients", params={"q": "rosa"})
    assert "<html" in full.text
    assert 'id="client-results"' in full.text
    search_box = re.search(r'<input id="client-q"[^>]*>', full.text, re.S).group(0)
    for attribute in (
        'hx-get="/clients"',
        'hx-trigger="input changed delay:250ms, search"',
        'hx-target="#client-results"',
        'hx-push-url="true"',
        'inputmode="search"',
        'autocomplete="off"',
        "autofocus",
        'value="rosa"',
    ):
        assert attribute in search_box

    fragment = await client.get(
        "/clients",
        params={"q": "rosa"},
        headers={"HX-Request": "true", "HX-Target": "client-results"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<section id="client-results"')
    assert result_names(fragment.text) == ["Rosa Menezes"]
    assert "HX-Request" in fragment.headers.get("vary", "")

    restore = await client.get(
        "/clients",
        params={"q": "rosa"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text


async def test_each_result_shows_the_balance_and_debtors_in_red(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    debtor = await add(maker, "Davi Devedor")
    await add(maker, "Clara Credora")
    async with maker() as session:
        await session.execute(
            Client.__table__.update().where(Client.id == debtor.id).values(owed_cents=15000)
        )
        await session.execute(
            Client.__table__.update()
            .where(Client.name == "Clara Credora")
            .values(credit_cents=5000)
        )
        await session.commit()
    await login(client, "reception")
    html = (await client.get("/clients")).text
    assert re.search(r'client-balance num neg"[^>]*>-\$150\.00<', html)
    assert re.search(r'client-balance num pos"[^>]*>\$50\.00<', html)


# --------------------------------------------------------------------------- the client page


async def test_client_page_shows_balance_open_charges_and_paged_history(
    client: AsyncTestClient[Any], login: Any, maker: Any
) -> None:
    saved = await add(maker, "Helena Histórico")
    day = date(2026, 1, 1)
    now = datetime.now(UTC)
    async with maker() as session:
        charges = [
            Charge(
                client_id=saved.id,
                date=day + timedelta(days=n),
                description=f"Session {n}",
                amount_cents=10000,
                paid_cents=paid,
                due_date=day + timedelta(days=n),
                status=status,
            )
            for n, (paid, status) in enumerate([(0, "open"), (4000, "partial"), (10000, "paid")])
        ]
        session.add_all(charges)
        await session.flush()
        for n in range(30):
            session.add(
                Entry(
                    client_id=saved.id,
                    kind="payment",
                    amount_cents=100 + n,
                    credit_delta_cents=100 + n,
                    owed_delta_cents=0,
                    effective_date=day + timedelta(days=n),
                    description=f"Entry number {n}",
                    created_at=now,
                )
            )
        client_row = await session.get_one(Client, saved.id)
        client_row.credit_cents, client_row.owed_cents = 2500, 16000
        await session.commit()

    await login(client, "accountant")
    page = await client.get(f"/clients/{saved.id}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'id="client-balance">-\$135\.00<', html)
    assert re.search(r'id="client-credit">\$25\.00<', html)
    assert re.search(r'id="client-owed">\$160\.00<', html)
    # Open charges: oldest first; the paid one is not listed.
    assert html.index("Session 0") < html.index("Session 1")
    assert "Session 2" not in html
    assert "$60.00" in html  # what is still open of the partly paid charge
    # History: newest first, 25 a page.
    assert html.index("Entry number 29") < html.index("Entry number 28")
    assert "Entry number 5<" in html and "Entry number 4<" not in html
    assert "Page 1 of 2" in html
    # The accountant reads but is offered no buttons that change anything.
    assert "/charges/new" not in html and "/archive" not in html and "/edit" not in html

    older = await client.get(
        f"/clients/{saved.id}",
        params={"page": 2},
        headers={"HX-Request": "true", "HX-Target": "client-history"},
    )
    assert older.text.lstrip().startswith('<div id="client-history">')
    assert "Entry number 4<" in older.text and "Entry number 5<" not in older.text


async def test_unknown_client_is_a_404(client: AsyncTestClient[Any], login: Any) -> None:
    await login(client, "reception")
    assert (await client.get("/clients/999999")).status_code == 404
    assert (await client.get("/clients/999999/edit")).status_code == 404


# --------------------------------------------------------------------------- who may do what


async def test_accountant_reads_clients_but_cannot_change_them(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    saved = await add(maker, "Lia Leitura")
    await login(client, "accountant")
    listing = await client.get("/clients")
    assert listing.status_code == 200 and "Lia Leitura" in listing.text
    assert "/clients/new" not in listing.text
    assert (await post_form(client, csrf, "/clients", {"name": "X"})).status_code == 403
    assert (await post_form(client, csrf, f"/clients/{saved.id}/archive", {})).status_code == 403
    assert await count_clients(maker) == 1


async def test_clients_need_a_login(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/clients")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_admin_deletes_a_mistaken_client_but_never_one_with_money(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    mistake = await add(maker, "Typo Client")
    billed = await add(maker, "Billed Client")
    async with maker() as session:
        session.add(
            Charge(
                client_id=billed.id,
                date=date(2026, 1, 5),
                amount_cents=5000,
                due_date=date(2026, 1, 5),
            )
        )
        await session.commit()
    await login(client, "reception")
    assert (await post_form(client, csrf, f"/clients/{mistake.id}/delete", {})).status_code == 403

    await login(client, "admin")
    assert f"/clients/{mistake.id}/delete" in (await client.get(f"/clients/{mistake.id}")).text
    assert f"/clients/{billed.id}/delete" not in (await client.get(f"/clients/{billed.id}")).text
    refused = await post_form(client, csrf, f"/clients/{billed.id}/delete", {})
    assert refused.status_code == 409
    assert "archive" in refused.text
    done = await post_form(client, csrf, f"/clients/{mistake.id}/delete", {})
    assert done.status_code == 303
    async with maker() as session:
        assert await session.get(Client, mistake.id) is None
        assert await session.get(Client, billed.id) is not None


async def test_search_stays_one_query_for_rows(
    client: AsyncTestClient[Any], login: Any, maker: Any, app: Any, monkeypatch: Any
) -> None:
    """The search box reads one page of rows and counts nothing."""
    from sqlalchemy import event

    from app import db

    await add(maker, "Query Counter")
    await login(client, "reception")
    statements: list[str] = []

    def record(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if "FROM clients" in statement:
            statements.append(statement)

    # Statements go through SQLAlchemy or, as HotRead and HotWrite, straight to the driver.
    for name in ("_on_asyncpg", "_on_aiosqlite"):
        sent = getattr(db, name)

        async def recorded(driver: Any, call: str, sql: str, args: Any, sent: Any = sent) -> Any:
            record(None, None, sql)
            return await sent(driver, call, sql, args)

        monkeypatch.setattr(db, name, recorded)
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await client.get("/clients", params={"q": "query"})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1
    assert "count(" not in statements[0].lower()
