"""The admin's backups page: the backups of this machine, "Back up now", downloads.

Admin only. Backups are files in this machine's BACKUP_DIR; a download names
one of the listed files exactly, so no other path can be reached.
"""

from __future__ import annotations

from typing import Any

from babel.numbers import format_decimal
from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import File, Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.controllers import client_ip, current_user
from app.auth.guards import ADMIN
from app.backup import services
from app.config import Settings
from app.web import i18n
from app.web.i18n import _


def size_label(size: int) -> str:
    """Bytes as KB or MB, with the locale's decimal separator."""
    locale = i18n.current().locale
    if size < 1 << 20:
        return _("%(size)s KB", size=format_decimal(round(size / 1024), locale=locale))
    return _("%(size)s MB", size=format_decimal(round(size / (1 << 20), 1), locale=locale))


class BackupController(Controller):
    path = "/admin/backups"
    opt = {"roles": ADMIN}
    include_in_schema = False

    @staticmethod
    async def _page(
        settings: Settings, made: str | None = None, error: str | None = None
    ) -> Template:
        backups = await services.list_backups_async(settings.backup_dir)
        return Template(
            "backup/page.html",
            context={
                "backups": backups,
                "sizes": {b.name: size_label(b.size) for b in backups},
                "made": made,
                "error": error,
                "keep": settings.backup_keep,
                "directory": str(settings.backup_dir),
            },
            status_code=422 if error else 200,
        )

    @get("", name="admin_backups")
    async def backups_page(self, settings: Settings, made: str | None = None) -> Template:
        """Newest first: size, time, schema revision, and whether each checksum holds."""
        return await self._page(settings, made=made if made and services.parse_name(made) else None)

    @post("", status_code=303)
    async def back_up_now(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Template | Redirect:
        """Make a backup off the event loop; a refusal comes back on the page with its reason."""
        try:
            backup = await services.make_backup_async(settings)
        except services.BackupError as exc:
            return await self._page(settings, error=str(exc))
        await services.record_backup(db_session, backup, current_user(request), client_ip(request))
        return Redirect(path=f"/admin/backups?made={backup.name}", status_code=303)

    @get("/{name:str}", name="admin_backup_download")
    async def download(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        name: str,
    ) -> File:
        """The backup file (or its ``.sha256``), streamed as an attachment; audited.

        ``restore`` needs both files side by side.
        """
        checksum = name.endswith(".sha256")
        backup = services.find_backup(settings.backup_dir, name.removesuffix(".sha256"))
        if backup is None:
            raise NotFoundException()
        path = services.checksum_file(backup) if checksum else backup.path
        if not path.is_file():
            raise NotFoundException()
        await services.record_download(
            db_session, path.name, current_user(request), client_ip(request)
        )
        return File(
            path=path,
            filename=path.name,
            media_type="text/plain" if checksum else "application/octet-stream",
            content_disposition_type="attachment",
            headers={"Cache-Control": "private, no-store"},
        )
