"""Billing messages read as the installation's language writes dates, months and money."""

from __future__ import annotations

from datetime import date

import pytest

from app.admin.services import PracticeSettings
from app.collecting.services import Debtor, billing_message, list_dates, month_name, render_message

FEB = [date(2026, 2, 3), date(2026, 2, 10), date(2026, 2, 17)]


@pytest.mark.parametrize(
    ("language", "locale", "n", "expected"),
    [
        ("pt_BR", "pt_BR", 1, "03/02"),
        ("pt_BR", "pt_BR", 2, "03/02 e 10/02"),
        ("pt_BR", "pt_BR", 3, "03/02, 10/02 e 17/02"),
        ("en", "en_US", 1, "02/03"),
        ("en", "en_US", 2, "02/03 and 02/10"),
        ("en", "en_US", 3, "02/03, 02/10 and 02/17"),
        ("es", "es_ES", 3, "03/02, 10/02 y 17/02"),
    ],
)
def test_session_dates_are_listed_the_languages_way(language, locale, n, expected):
    assert list_dates(FEB[:n], language, locale) == expected


def test_month_is_named_in_the_installations_language():
    assert month_name("2026-02", "pt_BR") == "fevereiro de 2026"
    assert month_name("2026-02", "en") == "February 2026"
    assert month_name("2026-02", "es") == "febrero de 2026"


def test_message_fills_placeholders_with_local_money_and_dates():
    practice = PracticeSettings(
        practice_name="Clínica Sol",
        currency="BRL",
        locale="pt_BR",
        language="pt_BR",
        payment_instructions="Pix: sol@example.com",
        message_friendly=(
            "Olá {client}! {month}: {count} sessões ({dates}), total {total}. {instructions}"
        ),
    )
    debtor = Debtor(1, "Maria Souza", None, None, 3, FEB, 123450, FEB[0])
    text = billing_message(practice, "friendly", debtor, "2026-02")
    assert text == (
        "Olá Maria! fevereiro de 2026: 3 sessões (03/02, 10/02 e 17/02), total R$\xa01.234,50. "
        "Pix: sol@example.com"
    )


def test_message_template_cannot_reach_python_objects():
    assert render_message("{client.__class__} {total} {nope}", {"client": "x", "total": "$1"}) == (
        "{client.__class__} $1 {nope}"
    )
