"""Every string a person reads is in gettext, and every catalog translates every one of them.

When a test here fails after new code, run ``python -m app i18n update`` and fill in
the empty msgstr it lists in app/locale/{pt_BR,es}/LC_MESSAGES/messages.po.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.collecting.services import month_name
from app.web import catalogs, i18n

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = ("pt_BR", "es")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%|\{\w+\}")


@pytest.fixture(scope="module")
def source_catalog():
    return catalogs.extract()


def _key(message) -> str:
    msgid = message.id[0] if isinstance(message.id, tuple) else message.id
    return f"{msgid} (context: {message.context})" if message.context else msgid


# --- the catalogs ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", catalogs.LANGUAGES)
def test_catalog_translates_every_string_of_the_source(source_catalog, language):
    catalog = catalogs.read_catalog(language)
    absent = [_key(m) for m in source_catalog if m.id and (m.id, m.context) not in _ids(catalog)]
    empty = catalogs.untranslated(catalog)
    assert not absent and not empty, (
        f"{language}: run `python -m app i18n update` and translate these in "
        f"{catalogs.po_path(language).relative_to(ROOT)}:\n  "
        + "\n  ".join(sorted(set(absent + empty)))
    )


def _ids(catalog) -> set:
    return {(m.id, m.context) for m in catalog if m.id}


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_of_their_msgid(language):
    wrong = []
    for message in catalogs.read_catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = sorted(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            if text and sorted(PLACEHOLDER.findall(text)) != expected:
                wrong.append(f"{ids[0]!r} -> {text!r}")
    assert not wrong, f"{language}: placeholders differ:\n  " + "\n  ".join(wrong)


def test_plural_rules_are_gettext_s_usual_ones():
    assert catalogs.read_catalog("pt_BR").plural_expr == "(n > 1)"
    assert catalogs.read_catalog("es").plural_expr == "(n != 1)"
    assert catalogs.read_catalog("en").plural_expr == "(n != 1)"


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        ("pt_BR", "1 sessão", "2 sessões"),
        ("es", "1 sesión", "2 sesiones"),
        ("en", "1 session", "2 sessions"),
    ],
)
def test_sessions_are_counted_in_each_language(language, one, two):
    i18n.use(i18n.Formatting(language=language))
    try:
        assert i18n.ngettext("%(num)d session", "%(num)d sessions", 1) == one
        assert i18n.ngettext("%(num)d session", "%(num)d sessions", 2) == two
    finally:
        i18n.use(i18n.Formatting())


def test_zero_sessions_is_singular_in_portuguese_and_plural_in_spanish():
    for language, expected in (("pt_BR", "0 sessão"), ("es", "0 sesiones")):
        i18n.use(i18n.Formatting(language=language))
        try:
            assert i18n.ngettext("%(num)d session", "%(num)d sessions", 0) == expected
        finally:
            i18n.use(i18n.Formatting())


def test_month_names_are_written_in_each_language():
    assert month_name("2026-03", "pt_BR") == "março de 2026"
    assert month_name("2026-03", "es") == "marzo de 2026"
    assert month_name("2026-03", "en") == "March 2026"


@pytest.mark.parametrize(
    ("locale", "cents", "typed"),
    [
        ("en_US", 123450, "1,234.50"),
        ("en_US", 5, "0.05"),
        ("en_US", 1_000_000_00, "1,000,000.00"),
        ("pt_BR", 123450, "1.234,50"),
        ("pt_BR", 5, "0,05"),
        ("pt_BR", 1_000_000_00, "1.000.000,00"),
        ("es_ES", 123450, "1.234,50"),
        ("es_ES", 5, "0,05"),
        ("es_ES", 1_000_000_00, "1.000.000,00"),
    ],
)
def test_amounts_shown_in_a_locale_read_back_as_the_same_cents(locale, cents, typed):
    fmt = i18n.Formatting(locale=locale)
    shown = i18n.format_amount(cents, fmt)
    assert shown == typed
    assert i18n.parse_amount(shown, fmt) == cents
    money = i18n.format_money(cents, replace(fmt, currency="EUR"))
    assert i18n.parse_amount(money, replace(fmt, currency="EUR")) == cents


def test_catalogs_compile_in_memory_with_no_build_step():
    assert i18n.translations("pt_BR").gettext("Dashboard") == "Painel"
    assert i18n.gettext_in("es", "Dashboard") == "Panel"
    assert not list(ROOT.glob("app/locale/**/*.mo")), "only .po files are kept"


# --- strings outside gettext: templates ----------------------------------------------------------

# Attributes a person reads or hears (value only on <input type=submit|button>).
READ_ATTRIBUTES = {
    *("placeholder", "title", "aria-label", "alt", "hx-confirm"),
    *("data-copied", "data-offline", "data-dismiss"),  # texts app.js shows
}
# Words that are the same in every language: product and format names.
SAME_IN_EVERY_LANGUAGE = {
    "CSV",
    "PDF",
    "ZIP",
    "Saldo",
    "WhatsApp",
    "Pix",
    "A4",
    "sha",
}  # sha: .sha256
_WORD = re.compile(r"[^\W\d_]{2,}")


def _blank_out(match: re.Match[str]) -> str:
    return "\n" * match.group(0).count("\n") + " "  # keeps line numbers right


def _without_jinja(source: str) -> str:
    for pattern in (
        r"\{#.*?#\}",
        r"\{%-?\s*trans\b.*?endtrans\s*-?%\}",
        r"\{%-?\s*block \w+_class\s*-?%\}.*?\{%-?\s*endblock",  # a class list, not text
        r"\{%.*?%\}",
        r"\{\{.*?\}\}",
    ):
        source = re.sub(pattern, _blank_out, source, flags=re.S)
    return source


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._hidden = 0

    def _check(self, text: str, attribute: str | None = None) -> None:
        if set(_WORD.findall(text)) - SAME_IN_EVERY_LANGUAGE:
            shown = f"{attribute}={text!r}" if attribute else text.strip()
            self.found.append((self.getpos()[0], shown))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        kind = dict(attrs).get("type")
        for name, value in attrs:
            if value and (
                name in READ_ATTRIBUTES
                or (name == "value" and tag == "input" and kind in ("submit", "button"))
            ):
                self._check(value, name)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._check(data)


def untranslated_template_text(source: str) -> list[tuple[int, str]]:
    """(line, text) for each visible text or read attribute not produced by gettext."""
    parser = _VisibleText()
    parser.feed(_without_jinja(source))
    parser.close()
    return parser.found


def test_the_template_scanner_catches_literal_text():
    bad = (
        "<h1>{{ _('Fine') }}</h1>\n<p>Hello there</p>\n"
        '<input type="submit" value="Send">\n<a title="Go back" href="/">{{ _("x") }}</a>'
    )
    assert [line for line, _text in untranslated_template_text(bad)] == [2, 3, 4]
    good = (
        '{% block main_class %}page login{% endblock %}<p>{{ _("Hi %(n)s", n=name) }} (CSV)</p>'
        '<button name="settle" value="pay_now">{{ _("Pay") }}</button>'
        '<script>let a = "x y";</script>'
    )
    assert untranslated_template_text(good) == []


def test_templates_hold_no_text_outside_gettext():
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for line, text in untranslated_template_text(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "wrap these in {{ _('…') }}:\n  " + "\n  ".join(found)


# --- strings outside gettext: Python ------------------------------------------------------------

# Exceptions whose message reaches a person (the page, a toast or the API's "detail").
_SINK = re.compile(r"(Error|Refused|Invalid|Exception|DuplicateName|ClientHasMoney)$")
# Exceptions whose text never reaches a person: the error handler shows its own words.
_INTERNAL = {"NotFoundError", "NotMigrated", "RefusedURL", "ValueError", "RuntimeError"}


def _sentence(node: ast.AST) -> str | None:
    """Literal text with a space in it (field names like "amount" have none)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    elif isinstance(node, ast.Dict):
        return next((t for v in node.values if (t := _sentence(v))), None)
    else:
        return None
    return text if " " in text.strip() and _WORD.search(text) else None


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def untranslated_python_messages(source: str) -> list[tuple[int, str]]:
    """(line, text) for literal messages raised to users or put into an ``errors`` dict."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _SINK.search(_name(node.func)):
            if _name(node.func) in _INTERNAL:
                continue
            for arg in [
                *node.args,
                *(k.value for k in node.keywords if k.arg in ("detail", "message")),
            ]:
                if text := _sentence(arg):
                    found.append((node.lineno, text))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                text = _sentence(node.value)
                if text and isinstance(target, ast.Subscript) and _name(target.value) == "errors":
                    found.append((node.lineno, text))
    return found


def test_the_python_scanner_catches_literal_messages():
    bad = (
        "raise Invalid('Enter a name.', 'name')\n"
        "errors['amount'] = 'Too much money'\n"
        "raise SettingsError({'logo': 'Use a PNG image.'})\n"
        "raise PermissionDeniedException(detail=f'No way {x}')\n"
    )
    assert sorted(line for line, _text in untranslated_python_messages(bad)) == [1, 2, 3, 4]
    good = (
        "raise Invalid(_('Enter a name.'), 'name')\n"
        "errors['amount'] = _('Too much money')\n"
        "raise NotFoundError(f'client {i} not found')\n"
        "raise ValueError(f'unknown settings: {names}')\n"
    )
    assert untranslated_python_messages(good) == []


def test_python_code_raises_no_message_outside_gettext():
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for line, text in untranslated_python_messages(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "wrap these in _('…'):\n  " + "\n  ".join(found)


def test_default_texts_are_in_the_catalogs():
    from app.admin.services import DEFAULT_TEXTS

    pt = catalogs.read_catalog("pt_BR")
    for text in DEFAULT_TEXTS.values():
        assert pt[text] is not None and pt[text].string, text
    assert i18n.gettext_in("pt_BR", DEFAULT_TEXTS["practice_name"]) == "Meu consultório"


def test_a_reader_gets_month_names_in_their_language_and_money_in_the_installations_locale():
    reader = i18n.Formatting(language="pt_BR", locale="en_US", currency="USD")
    assert i18n.format_day(date(2026, 3, 2), "long", reader) == "2 de março de 2026"
    assert i18n.format_money(123450, reader) == "$1,234.50"
    spanish = i18n.Formatting(language="es", locale="pt_BR", currency="BRL")
    assert "marzo" in i18n.format_day(date(2026, 3, 2), "long", spanish)
    assert i18n.format_money(123450, spanish) == "R$\xa01.234,50"
    same = i18n.Formatting(language="pt_BR", locale="pt_BR")
    assert i18n.format_day(date(2026, 3, 2), "short", same) == "02/03/2026"
