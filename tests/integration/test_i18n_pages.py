"""The desk in Portuguese and Spanish: every main page, with no English string left over.

A user picks their own language on the account page; what goes to a client
(billing messages, statement e-mails and PDFs) is in the practice's language.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest

from app.admin.services import load_settings, save_settings
from app.auth.models import User
from app.statements.documents import Letterhead, StatementDocument, pdf_html
from app.statements.mail import statement_message
from app.statements.services import statement
from app.web import catalogs, i18n

SAMPLE = {
    "pt_BR": ("Painel", "Registrar sessão", "Cobranças"),
    "es": ("Panel", "Registrar sesión", "Cargos"),
}


def english_left_over(language: str) -> list[str]:
    """English msgids long enough to be telling, whose translation reads differently."""
    texts = []
    for message in catalogs.read_catalog(language):
        if not message.id or isinstance(message.id, tuple) or "%" in message.id:
            continue
        if len(message.id) > 12 and message.string != message.id and "{" not in message.id:
            texts.append(message.id)
    return texts


def visible_text(page: str) -> str:
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


async def a_month_of_work(client, csrf, client_id: int) -> date:
    """One open session last month (so the month review has someone to collect from)."""
    day = (date.today().replace(day=1) - timedelta(days=1)).replace(day=10)
    answer = await client.post(
        "/api/v1/charges",
        json={"client_id": client_id, "amount": "120.00", "date": day.isoformat()},
        headers={"x-csrftoken": await csrf(client)},
    )
    assert answer.status_code == 201, answer.text
    return day


async def choose_language(client, csrf, language: str) -> None:
    answer = await client.post(
        "/account/language",
        data={"language": language, "_csrf_token": await csrf(client)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:300]


@pytest.mark.parametrize("language", ["pt_BR", "es"])
async def test_every_main_page_speaks_the_users_language(
    client, login, csrf, make_client, language
):
    await login(client, "admin")
    ana = await make_client("Ana Souza", email="ana@example.com")
    day = await a_month_of_work(client, csrf, ana)
    await choose_language(client, csrf, language)
    month = f"{day:%Y-%m}"
    pages = [
        "/",
        "/clients",
        f"/clients/{ana}",
        "/clients/new",
        "/charges/new",
        "/payments/new",
        "/charges",
        f"/collect?month={month}",
        f"/clients/{ana}/statement?from={month}-01&to={day}",
        "/statements",
        "/periods",
        "/expenses",
        "/expenses/summary",
        "/exports",
        "/admin/settings",
        "/admin/users",
        "/admin/services",
        "/admin/staff",
        "/admin/audit",
        "/account/password",
        "/reports",
        "/reports/received",
        "/reports/billed",
        "/reports/aging",
        "/reports/debtors",
        "/reports/daily",
        "/reports/commissions",
        "/admin/backups",
        f"/clients/{ana}/anonymise",
    ]
    english = english_left_over(language)
    for path in pages:
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert f'<html lang="{language.replace("_", "-")}">' in page.text, path
        text = visible_text(page.text)
        left = [phrase for phrase in english if phrase in text]
        assert not left, f"{path} shows English in {language}: {left}"
    dashboard = visible_text((await client.get("/")).text)
    assert all(word in dashboard for word in SAMPLE[language])
    review = visible_text((await client.get(f"/collect?month={month}")).text)
    assert {"pt_BR": "1 sessão", "es": "1 sesión"}[language] in review


async def test_the_installation_default_comes_back_when_the_user_clears_their_choice(
    client, login, csrf
):
    await login(client, "reception")
    await choose_language(client, csrf, "es")
    assert "Cerrar sesión" in (await client.get("/")).text
    await choose_language(client, csrf, "")
    page = (await client.get("/account/password")).text
    assert "Log out" in page and 'value="" selected' in page


async def test_an_unknown_language_is_refused_next_to_the_field(client, login, csrf):
    await login(client, "reception")
    answer = await client.post(
        "/account/language", data={"language": "klingon", "_csrf_token": await csrf(client)}
    )
    assert answer.status_code == 422
    assert 'id="e-language"' in answer.text and "Unknown language." in answer.text


async def test_refusals_speak_the_users_language(client, login, csrf):
    await login(client, "reception")
    await choose_language(client, csrf, "pt_BR")
    refused = await client.get("/admin/settings")
    assert refused.status_code == 403
    assert "Você não tem permissão" in refused.text or "Seu perfil não permite" in refused.text


async def test_documents_for_clients_use_the_practice_language_not_the_users(
    client, login, csrf, make_client, maker
):
    admin = await login(client, "admin")
    ana = await make_client("Ana Souza", email="ana@example.com")
    async with maker() as session:
        actor = await session.get_one(User, admin.id)
        await save_settings(
            session, {"language": "pt_BR", "locale": "pt_BR", "currency": "BRL"}, actor, None
        )
    day = await a_month_of_work(client, csrf, ana)
    await choose_language(client, csrf, "en")  # the admin reads the desk in English

    review = await client.get(f"/collect?month={day:%Y-%m}")
    assert "To collect" in review.text  # the desk: English
    assert "Olá, Ana! Segue o resumo de" in html.unescape(review.text)  # to the client: pt_BR
    assert "1 sessão(ões)" in html.unescape(review.text)

    async with maker() as session:
        practice = await load_settings(session)
        first = day.replace(day=1)
        st = await statement(session, ana, first, day)
    doc = StatementDocument(st, Letterhead.of(practice), datetime.now(UTC))
    i18n.use(i18n.Formatting(language="en"))  # whoever asks, in whatever language
    message = statement_message(doc, b"%PDF-1.7", "ana@example.com", "billing@clinic.example")
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Meu consultório · extrato de" in message["Subject"]
    assert "Olá, Ana Souza," in body and "Valor devido: R$\xa0120,00" in body
    printed = visible_text(pdf_html(doc))
    assert "Extrato" in printed and "Saldo final" in printed and "Statement" not in printed

    paid = await client.post(
        "/api/v1/payments",
        json={"client_id": ana, "amount": "50.00", "method": "pix", "received_on": f"{day}"},
        headers={"x-csrftoken": await csrf(client)},
    )
    assert paid.status_code == 201, paid.text
    receipt = visible_text((await client.get(f"/payments/{paid.json()['id']}/receipt")).text)
    assert "Recibo" in receipt and "Total recebido" in receipt and "R$\xa050,00" in receipt

    export = await client.get(f"/clients/{ana}/data.zip")
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        readme = archive.read("README.txt").decode()
    assert "Dados mantidos por Meu consultório sobre o cliente" in readme


async def test_default_texts_follow_the_practice_language_until_an_admin_writes_their_own(
    client, login, maker
):
    admin = await login(client, "admin")
    async with maker() as session:
        actor = await session.get_one(User, admin.id)
        english = await load_settings(session)
        assert english.message_friendly.startswith("Hello {client}!")
        # Saving the form as shown stores the English defaults…
        await save_settings(
            session,
            {"practice_name": english.practice_name, "message_friendly": english.message_friendly},
            actor,
            None,
        )
        await save_settings(session, {"language": "es"}, actor, None)
        spanish = await load_settings(session)
        # …which still follow the language: they were never the admin's own words.
        assert spanish.practice_name == "Mi centro"
        assert spanish.message_friendly.startswith("¡Hola, {client}!")
        assert spanish.message_final.startswith("{client}, las sesiones de {month}")
        await save_settings(session, {"message_friendly": "Hola {client}, ¿qué tal?"}, actor, None)
        await save_settings(session, {"language": "pt_BR"}, actor, None)
        portuguese = await load_settings(session)
    assert portuguese.message_friendly == "Hola {client}, ¿qué tal?"  # their own words stay
    assert portuguese.message_reminder.startswith("Olá, {client}, lembramos que")


@pytest.mark.parametrize(
    ("locale", "currency", "typed", "shown"),
    [
        ("en_US", "USD", "1,234.50", "$1,234.50"),
        ("pt_BR", "BRL", "1.234,50", "R$\xa01.234,50"),
        ("es_ES", "EUR", "1.234,50", "1.234,50\xa0€"),
    ],
)
async def test_an_amount_typed_the_locales_way_is_shown_back_the_same_way(
    client, login, make_client, maker, locale, currency, typed, shown
):
    admin = await login(client, "admin")
    async with maker() as session:
        actor = await session.get_one(User, admin.id)
        await save_settings(session, {"locale": locale, "currency": currency}, actor, None)
    ana = await make_client("Ana Souza")
    form = (await client.get(f"/payments/new?client_id={ana}")).text
    fields = dict(re.findall(r'name="(_csrf_token|idempotency_key)" value="([^"]+)"', form))
    paid = await client.post(
        "/payments",
        data={**fields, "client_id": str(ana), "amount": typed, "method": "cash"},
    )
    assert paid.status_code == 200, paid.text[:300]
    assert "/receipt" in str(paid.url)
    assert shown in paid.text.replace("&nbsp;", "\xa0")
    client_page = (await client.get(f"/clients/{ana}")).text
    assert shown in client_page.replace("&nbsp;", "\xa0")  # the credit it became


async def test_journal_lines_are_written_in_the_practice_language_whoever_types(
    client, login, csrf, make_client, maker
):
    admin = await login(client, "admin")
    async with maker() as session:
        actor = await session.get_one(User, admin.id)
        await save_settings(session, {"language": "es"}, actor, None)
    await choose_language(client, csrf, "pt_BR")  # a Portuguese speaker at a Spanish practice
    ana = await make_client("Ana Souza")
    day = await a_month_of_work(client, csrf, ana)
    history = visible_text((await client.get(f"/clients/{ana}")).text)
    assert "Histórico" in history  # the screen: Portuguese
    assert "Sesión" in history and "Sessão" not in history  # the record: Spanish
    statement_page = await client.get(f"/clients/{ana}/statement?from={day:%Y-%m}-01&to={day}")
    assert "Sesión" in visible_text(statement_page.text)
