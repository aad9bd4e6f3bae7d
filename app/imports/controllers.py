"""Import pages (admin): upload a CSV, map its columns, dry run, import.

The owner migrating from spreadsheets does this once or a few times, so it is
admin-only. The dry run answers HTMX with the work area only (mapping and
results); without JavaScript the same buttons post normal forms.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.controllers import client_ip
from app.auth.guards import ADMIN
from app.imports import parsing, services
from app.imports.models import ImportFile
from app.ledger.controllers import _practice, _user
from app.web.errors import is_htmx
from app.web.i18n import _

SHOW_LIMIT = 500  # lines listed in the result table; the totals count them all
SHOW = ("all", "invalid", "duplicate", "create")


def _choices() -> dict[str, Any]:
    return {
        "targets": parsing.target_labels(),
        "delimiters": {";": _("Semicolon ( ; )"), ",": _("Comma ( , )"), "tab": _("Tab")},
        "decimal_marks": {",": _("Comma: 1.234,50"), ".": _("Point: 1,234.50")},
        "date_formats": {
            "dmy": _("Day first: 31/01/2026"),
            "mdy": _("Month first: 01/31/2026"),
            "iso": _("ISO: 2026-01-31"),
        },
        "shows": {
            "all": _("All lines"),
            "invalid": _("Invalid lines"),
            "duplicate": _("Duplicates"),
            "create": _("Lines that create something"),
        },
    }


class ImportPages(Controller):
    path = "/imports"
    opt = {"roles": ADMIN}
    include_in_schema = False

    async def _file(self, session: AsyncSession, import_id: int) -> ImportFile:
        f = await services.get_file(session, import_id)
        if f is None:
            raise NotFoundException()
        return f

    def _options(self, f: ImportFile, request: Request[Any, Any, Any], form: Any) -> Any:
        """The form's options; a changed delimiter means new columns: their mapping is guessed."""
        guess = services.guess_options(f.content, _practice(request))
        if form is None:
            if f.options:
                saved = json.loads(f.options)
                return parsing.Options(**saved)
            return guess
        options = services.options_from_form(form, guess)
        if form.get("shown_delimiter") not in (None, options.delimiter):
            text_, _enc = parsing.decode(f.content)
            rows = parsing.read_rows(text_, options.delimiter)
            options.mapping = parsing.guess_mapping(rows[0][1] if rows else [])
            options.has_header = any(t != "ignore" for t in options.mapping)
        return options

    async def _work(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        f: ImportFile,
        form: Any = None,
        *,
        dry_run: bool = False,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
        fragment: bool = False,
        done: bool = False,
    ) -> Template:
        options = self._options(f, request, form)
        table = services.preview(f.content, options)
        options.mapping = (options.mapping + ["ignore"] * table.columns)[: table.columns]
        errors = dict(errors or {})
        plan = None
        if dry_run:
            try:
                plan = await services.make_plan(session, f.content, options, _practice(request))
            except services.ImportRefused as exc:
                errors.setdefault(exc.field, exc.message)
        show = (form.get("show") if form is not None else None) or "all"
        show = show if show in SHOW else "all"
        lines = []
        if plan is not None:
            lines = [r for r in plan.lines if show == "all" or r.status == show]
        context = {
            "f": f,
            "table": table,
            "options": options,
            "plan": plan,
            "lines": lines[:SHOW_LIMIT],
            "lines_total": len(lines),
            "show": show,
            "errors": errors,
            "skip_invalid": form is not None and form.get("skip_invalid") in ("1", "on"),
            "done": services.last_result(f) if done else None,
            **_choices(),
        }
        name = "imports/_work.html" if fragment else "imports/preview.html"
        return Template(name, context=context, status_code=status_code)

    @get("", name="imports")
    async def page(self, db_session: AsyncSession) -> Template:
        """The upload form and the files uploaded lately."""
        return await self._upload_page(db_session)

    async def _upload_page(
        self, session: AsyncSession, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        files = await services.recent_files(session)
        return Template(
            "imports/page.html",
            context={
                "files": [(f, services.last_result(f)) for f in files],
                "errors": errors or {},
            },
            status_code=status_code,
        )

    @post("", status_code=303)
    async def upload(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        """Keep the file and show its preview; a file that cannot be read comes back with why."""
        form = await request.form()
        upload = form.get("file")
        content = await upload.read() if hasattr(upload, "read") else b""
        filename = getattr(upload, "filename", "") or "import.csv"
        try:
            f = await services.store_file(db_session, _user(request), filename, content)
        except services.ImportRefused as exc:
            return await self._upload_page(db_session, {"file": exc.message}, 422)
        return Redirect(f"/imports/{f.id}", status_code=303)

    @get("/{import_id:int}", name="import_preview")
    async def preview(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, import_id: int
    ) -> Template:
        """The first lines with a guessed mapping (or the one last imported with)."""
        f = await self._file(db_session, import_id)
        done = request.query_params.get("done") == "1"
        return await self._work(request, db_session, f, done=done)

    @post("/{import_id:int}/dry-run", status_code=200)
    async def dry_run(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, import_id: int
    ) -> Template:
        """What the import would do, line by line. Writes nothing."""
        f = await self._file(db_session, import_id)
        form = await request.form()
        return await self._work(
            request, db_session, f, form, dry_run=True, fragment=is_htmx(request)
        )

    @post("/{import_id:int}/apply", status_code=303)
    async def apply(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, import_id: int
    ) -> Template | Redirect:
        """Import in one transaction; refused (nothing written) with the reason next to the form."""
        f = await self._file(db_session, import_id)
        form = await request.form()
        options = self._options(f, request, form)
        try:
            await services.apply_import(
                db_session,
                _user(request),
                _practice(request),
                f.id,
                options,
                skip_invalid=form.get("skip_invalid") in ("1", "on"),
                ip=client_ip(request),
            )
        except services.ImportRefused as exc:
            f = await self._file(db_session, import_id)
            return await self._work(
                request,
                db_session,
                f,
                form,
                dry_run=True,
                errors={exc.field: exc.message},
                status_code=409 if exc.field == "form" else 422,
            )
        return Redirect(f"/imports/{f.id}?done=1", status_code=303)
