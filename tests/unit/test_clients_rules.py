"""How client names, phones and searches are normalised (no database needed)."""

from __future__ import annotations

import pytest

from app.clients.services import _contains, normalise_phone, query_words, search_fields, search_key


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("João Conceição", "joao conceicao"),
        ("  MARIA   josé\tda  Silva ", "maria jose da silva"),
        ("Zoë Ångström", "zoe angstrom"),
        ("Ñandú", "nandu"),
        ("", ""),
    ],
)
def test_search_key_ignores_case_accents_and_extra_spaces(typed: str, key: str) -> None:
    assert search_key(typed) == key


def test_one_function_builds_the_name_key_and_the_search_text() -> None:
    assert search_fields("João  Conceição", "5511999990000", "JC@Clínica.com") == (
        "joao conceicao",
        "joao conceicao 5511999990000 jc@clinica.com",
    )
    assert search_fields("Ana", None, None) == ("ana", "ana")


def test_query_words_are_normalised_like_the_search_text() -> None:
    assert query_words("  JOÃO   ceiç ") == ["joao", "ceic"]
    assert query_words("(11) 99999-0000") == ["11", "999990000"]
    assert query_words("+55") == ["55"]
    assert query_words("ana-maria") == ["ana-maria"]
    assert query_words("") == []


def test_like_wildcards_typed_by_a_person_are_literal() -> None:
    assert _contains("100%") == "%100/%%"
    assert _contains("a_b") == "%a/_b%"
    assert _contains("1/2") == "%1//2%"


@pytest.mark.parametrize(
    ("typed", "country", "digits"),
    [
        ("(11) 99999-0000", "55", "5511999990000"),
        ("+55 11 99999-0000", "1", "5511999990000"),
        ("11 3333-4444", "55", "551133334444"),
        ("(212) 555-0100", "1", "12125550100"),
        ("612 34 56 78", "34", "34612345678"),
        ("06 1234 5678", "39", "390612345678"),  # Italy keeps its leading zero
    ],
)
def test_phone_becomes_international_digits(typed: str, country: str, digits: str) -> None:
    assert normalise_phone(typed, country) == digits


@pytest.mark.parametrize("typed", ["123", "abc", "99999-0000", "+999 123"])
def test_invalid_phone_is_refused_with_a_message(typed: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        normalise_phone(typed, "55")
