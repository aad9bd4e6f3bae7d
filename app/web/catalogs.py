"""The translation catalogs: extracting the strings from the source and refreshing the .po files.

The .po files under ``app/locale/<language>/LC_MESSAGES/messages.po`` are the only
translation artefacts kept in the repository; ``app.web.i18n`` compiles them in
memory on first use, so a clean clone needs no build step. ``python -m app i18n
update`` re-extracts every ``_()`` / ``gettext`` / ``ngettext`` call and
``{% trans %}`` block and merges the result into each catalog; new strings arrive
with an empty translation for a person to fill in, and the catalog test lists them.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent.parent
LOCALE_DIR = ROOT / "app" / "locale"
LANGUAGES = ("en", "pt_BR", "es")
# Gettext's usual rules (CLDR's newer "millions" category would need a third form).
PLURAL_FORMS = {
    "en": "nplurals=2; plural=(n != 1);",
    "pt_BR": "nplurals=2; plural=(n > 1);",
    "es": "nplurals=2; plural=(n != 1);",
}
HEADER = """\
# {language} translations for Saldo.
# Refresh with `python -m app i18n update`, then fill in every empty msgstr.
#"""
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "N_": None,
    "recorded": None,
}
# Where user-facing strings live: the Python package and the Jinja templates.
_SOURCES = (
    ("app", [("**.py", "python")]),
    ("templates", [("**.html", "jinja2"), ("**.txt", "jinja2")]),
)
_JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def _extracted() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    for folder, method_map in _SOURCES:
        options = {"**.html": _JINJA_OPTIONS, "**.txt": _JINJA_OPTIONS}
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / folder,
            method_map=method_map,
            options_map=options,
            keywords=KEYWORDS,
            comment_tags=("Translators:",),
        ):
            yield f"{folder}/{filename}", lineno, message, comments, context


def extract() -> Catalog:
    """Every translatable string in the source, as a template catalog (no translations)."""
    catalog = Catalog(project="Saldo", charset="utf-8", fuzzy=False)
    for filename, lineno, message, comments, context in _extracted():
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def read_catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def write_catalog(catalog: Catalog, language: str) -> None:
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, sort_output=True, include_lineno=False)
    path.write_bytes(buffer.getvalue())


def update(template: Catalog | None = None) -> dict[str, list[str]]:
    """Merge the source's strings into each catalog; language -> msgids still untranslated.

    Strings gone from the source are dropped (Babel keeps them as obsolete, which we
    do not write); fuzzy guesses are not kept, so every new string shows as missing
    until a person translates it.
    """
    template = template or extract()
    missing: dict[str, list[str]] = {}
    for language in LANGUAGES:
        if po_path(language).exists():
            catalog = read_catalog(language)
        else:
            catalog = Catalog(locale=language, project="Saldo", charset="utf-8", fuzzy=False)
        catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS[language])]
        catalog.header_comment = HEADER.format(language=language)
        catalog.project, catalog.version = "Saldo", "1"
        created = catalog.creation_date  # kept, so that a refresh changes only the messages
        # A copy each time: Babel adds the template's own message objects to the catalog.
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True)
        catalog.creation_date = created
        catalog.obsolete.clear()
        catalog.fuzzy = False
        for message in catalog:
            # Babel flags a new plural entry fuzzy; an empty msgstr already marks it as missing.
            message.flags.discard("fuzzy")
        if language == "en":
            _fill_source_language(catalog)
        write_catalog(catalog, language)
        missing[language] = untranslated(catalog)
    return missing


def _fill_source_language(catalog: Catalog) -> None:
    """English is the source language: its translations are the msgids themselves."""
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            if not all(message.string):
                message.string = (message.id[0], message.id[1])
        elif not message.string:
            message.string = message.id


def untranslated(catalog: Catalog) -> list[str]:
    """The msgids (singular form) whose translation is empty or marked fuzzy."""
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            msgid = message.id[0] if isinstance(message.id, tuple) else message.id
            missing.append(f"{msgid} (context: {message.context})" if message.context else msgid)
    return missing
