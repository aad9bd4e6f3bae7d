"""Money as text: the integer fast path writes exactly what Babel writes, in every locale."""

from __future__ import annotations

import random

import pytest
from babel.numbers import format_currency

from app.web import i18n

PAIRS = [
    ("BRL", "pt_BR"),
    ("USD", "en_US"),
    ("EUR", "es_ES"),
    ("EUR", "es"),
    ("EUR", "de_DE"),
    ("EUR", "fr_FR"),
    ("BRL", "en_US"),
    ("INR", "en_IN"),
    ("JPY", "ja_JP"),
    ("CHF", "de_CH"),
]


@pytest.mark.parametrize(("currency", "locale"), PAIRS)
def test_format_money_is_babels_answer(currency: str, locale: str) -> None:
    fmt = i18n.Formatting(locale=locale, currency=currency)
    rng = random.Random(f"{currency}{locale}")
    amounts = [0, 1, 5, 99, 100, 999, 100_000, 123_456, 99_999_999, -5, -123_456, 10**13]
    amounts += [rng.randint(-(10**11), 10**11) for _ in range(500)]
    for cents in amounts:
        expected = format_currency(i18n.cents_to_decimal(cents), currency, locale=locale)
        assert i18n.format_money(cents, fmt) == expected, cents


def test_the_fast_path_is_taken_where_the_pattern_is_plain_and_left_elsewhere() -> None:
    assert i18n._money_parts("BRL", "pt_BR") == ("R$\xa0", "", "-R$\xa0", "", ".", ",")
    assert i18n._money_parts("INR", "en_IN") is None  # 12,34,567.89: Babel itself
    assert i18n._money_parts("JPY", "ja_JP") is None  # no minor unit: Babel itself


def test_a_sum_from_postgresql_formats_like_an_int() -> None:
    from decimal import Decimal

    fmt = i18n.Formatting(locale="pt_BR", currency="BRL")
    assert (
        i18n.format_money(Decimal(123456), fmt)
        == i18n.format_money(123456, fmt)
        == "R$\xa01.234,56"
    )
