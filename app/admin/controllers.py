"""Admin pages: users and their API tokens, the audit log, the practice settings."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any
from zoneinfo import available_timezones

from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import services as admin
from app.auth import services as auth
from app.auth.controllers import FORM, client_ip, current_user
from app.auth.guards import ADMIN
from app.auth.models import ROLES, User
from app.web.errors import is_htmx
from app.web.i18n import LANGUAGE_NAMES, LANGUAGES, _, format_amount

COMMON_LOCALES = ("en_US", "en_GB", "pt_BR", "pt_PT", "es_ES", "es_MX", "es_AR", "de_DE", "fr_FR")
COMMON_CURRENCIES = ("USD", "EUR", "BRL", "GBP", "ARS", "MXN", "CLP", "COP", "CAD", "AUD")


def role_names() -> dict[str, str]:
    return {"admin": _("Admin"), "reception": _("Reception"), "accountant": _("Accountant")}


class NewUserForm(Struct):
    username: str = ""
    display_name: str = ""
    role: str = "reception"
    password: str = ""


class RoleForm(Struct):
    role: str = ""


class ResetPasswordForm(Struct):
    new_password: str = ""


class UsersController(Controller):
    """Logins and their API tokens. Every change is audited by the service it calls."""

    path = "/admin/users"
    opt = {"roles": ADMIN}
    include_in_schema = False

    async def _page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        *,
        form: NewUserForm | None = None,
        errors: dict[str, str] | None = None,
        created: User | None = None,
        row_errors: dict[int, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        return Template(
            "admin/users.html",
            context={
                "users": await auth.list_users(db_session),
                "tokens": await auth.list_tokens(db_session),
                "form": form or NewUserForm(),
                "errors": errors or {},
                "created": created,
                "row_errors": row_errors or {},
                "roles": ROLES,
                "role_names": role_names(),
                "me": current_user(request),
                "now": auth.now(),
            },
            status_code=status_code,
        )

    def _row(
        self,
        request: Request[Any, Any, Any],
        user: User,
        *,
        note: str | None = None,
        error: str | None = None,
        password_error: str | None = None,
        status_code: int = 200,
    ) -> Template:
        return Template(
            "admin/_user_row.html",
            context={
                "u": user,
                "note": note,
                "error": error,
                "password_error": password_error,
                "roles": ROLES,
                "role_names": role_names(),
                "me": current_user(request),
            },
            status_code=status_code,
        )

    async def _refused(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: int,
        message: str,
        status_code: int,
    ) -> Template:
        """The row as it really is, with the reason the change was refused."""
        user = await auth.get_user(db_session, user_id)
        if user is None:
            raise NotFoundException()
        if is_htmx(request):
            return self._row(request, user, error=message, status_code=status_code)
        return await self._page(
            request, db_session, row_errors={user_id: message}, status_code=status_code
        )

    @get("", name="admin_users")
    async def users_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, created: int | None = None
    ) -> Template:
        new_user = await auth.get_user(db_session, created) if created else None
        return await self._page(request, db_session, created=new_user)

    @post("", status_code=303)
    async def create_user(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        data: Annotated[NewUserForm, FORM],
    ) -> Template | Redirect:
        errors: dict[str, str] = {}
        if problem := auth.password_problem(data.password, data.username):
            errors["password"] = problem
        if data.role not in ROLES:
            errors["role"] = _("Unknown role.")
        if not data.username.strip():
            errors["username"] = _("Enter a username.")
        if not errors:
            try:
                user = await auth.create_user(
                    db_session,
                    data.username,
                    data.password,
                    data.role,
                    data.display_name,
                    actor=current_user(request),
                    ip=client_ip(request),
                )
            except ValueError as exc:
                errors["username"] = str(exc)
            else:
                return Redirect(path=f"/admin/users?created={user.id}", status_code=303)
        data.password = ""  # never echo a password back
        return await self._page(request, db_session, form=data, errors=errors, status_code=422)

    @post("/{user_id:int}/role", status_code=200)
    async def change_role(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: int,
        data: Annotated[RoleForm, FORM],
    ) -> Template | Redirect:
        try:
            user = await auth.set_role(
                db_session, user_id, data.role, actor=current_user(request), ip=client_ip(request)
            )
        except LookupError:
            raise NotFoundException() from None
        except auth.UserChangeRefused as exc:
            return await self._refused(request, db_session, user_id, str(exc), 409)
        except ValueError as exc:
            return await self._refused(request, db_session, user_id, str(exc), 422)
        if not is_htmx(request):
            return Redirect(path="/admin/users", status_code=303)
        note = _("Role is now %(role)s.", role=role_names()[user.role])
        return self._row(request, user, note=note)

    async def _set_active(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: int, active: bool
    ) -> Template | Redirect:
        try:
            user = await auth.set_active(
                db_session, user_id, active, actor=current_user(request), ip=client_ip(request)
            )
        except LookupError:
            raise NotFoundException() from None
        except auth.UserChangeRefused as exc:
            return await self._refused(request, db_session, user_id, str(exc), 409)
        if not is_htmx(request):
            return Redirect(path="/admin/users", status_code=303)
        if active:
            note = _("Enabled: %(name)s can log in again.", name=user.username)
        else:
            note = _("Disabled: %(name)s was logged out everywhere.", name=user.username)
        return self._row(request, user, note=note)

    @post("/{user_id:int}/disable", status_code=200)
    async def disable_user(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: int
    ) -> Template | Redirect:
        return await self._set_active(request, db_session, user_id, False)

    @post("/{user_id:int}/enable", status_code=200)
    async def enable_user(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: int
    ) -> Template | Redirect:
        return await self._set_active(request, db_session, user_id, True)

    @post("/{user_id:int}/password", status_code=200)
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: int,
        data: Annotated[ResetPasswordForm, FORM],
    ) -> Template | Redirect:
        try:
            user = await auth.reset_password(
                db_session,
                user_id,
                data.new_password,
                actor=current_user(request),
                ip=client_ip(request),
            )
        except LookupError:
            raise NotFoundException() from None
        except ValueError as exc:
            target = await auth.get_user(db_session, user_id)
            assert target is not None  # reset_password found it
            if is_htmx(request):
                return self._row(request, target, password_error=str(exc), status_code=422)
            return await self._page(
                request, db_session, row_errors={user_id: str(exc)}, status_code=422
            )
        if not is_htmx(request):
            return Redirect(path="/admin/users", status_code=303)
        note = _(
            "New password set for %(name)s; their sessions and tokens ended.", name=user.username
        )
        return self._row(request, user, note=note)

    @post("/tokens/{token_id:int}/revoke", status_code=200)
    async def revoke_token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token_id: int
    ) -> Template | Redirect:
        token = await auth.revoke_token(
            db_session, token_id, current_user(request), client_ip(request)
        )
        if token is None:
            raise NotFoundException()
        if not is_htmx(request):
            return Redirect(path="/admin/users", status_code=303)
        return Template(
            "admin/_user_token_row.html",
            context={
                "token": token,
                "now": auth.now(),
                "revoke_url": f"/admin/users/tokens/{token.id}/revoke",
                "show_owner": True,
            },
        )


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


class AuditController(Controller):
    path = "/admin/audit"
    opt = {"roles": ADMIN}
    include_in_schema = False

    @get("", name="admin_audit")
    async def audit_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        action: str = "",
        username: str = "",
        date_from: str | None = None,
        date_to: str | None = None,
        page: int = 1,
    ) -> Template:
        """Newest first; the filter form swaps only the results when HTMX asks."""
        where = admin.AuditFilter(
            action=action.strip(),
            username=username.strip(),
            date_from=_day(date_from),
            date_to=_day(date_to),
        )
        timezone = request.state.practice.timezone
        result = await admin.audit_events(db_session, where, page, timezone)
        context = {
            "result": result,
            "rows": [(event, json.loads(event.detail or "{}")) for event in result.events],
            "where": where,
        }
        if is_htmx(request):
            return Template("admin/_audit_results.html", context=context)
        return Template("admin/audit.html", context=context)


class SettingsController(Controller):
    path = "/admin/settings"
    opt = {"roles": ADMIN}
    include_in_schema = False

    def _page(
        self,
        values: dict[str, Any],
        errors: dict[str, str],
        saved: bool = False,
        status_code: int = 200,
    ) -> Template:
        return Template(
            "admin/settings.html",
            context={
                "values": values,
                "errors": errors,
                "saved": saved,
                "languages": [(code, LANGUAGE_NAMES.get(code, code)) for code in LANGUAGES],
                "timezones": sorted(available_timezones()),
                "locales": COMMON_LOCALES,
                "currencies": COMMON_CURRENCIES,
            },
            status_code=status_code,
        )

    @get("", name="admin_settings")
    async def settings_page(self, db_session: AsyncSession, saved: bool = False) -> Template:
        current = await admin.load_settings(db_session)
        values: dict[str, Any] = {
            **current.__dict__,
            "max_amount": format_amount(current.max_amount_cents),
        }
        return self._page(values, {}, saved=saved)

    @post("", status_code=303)
    async def save_settings(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        """Nothing is written when any field is refused; the form comes back with the reasons."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        changes, errors = admin.settings_from_form(form)
        if not errors:
            try:
                await admin.save_settings(
                    db_session, changes, current_user(request), client_ip(request)
                )
            except admin.SettingsError as exc:
                errors = exc.errors
            else:
                return Redirect(path="/admin/settings?saved=true", status_code=303)
        return self._page(form, errors, status_code=422)

    @post("/logo", status_code=303)
    async def save_logo(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        """Upload (PNG or JPEG, at most 256 KB) or remove the logo on statements and receipts."""
        form = await request.form()
        try:
            if form.get("remove"):
                logo = ""
            else:
                upload = form.get("logo")
                content = await upload.read() if hasattr(upload, "read") else b""
                logo = admin.logo_data_url(content)
            await admin.save_settings(
                db_session, {"logo": logo}, current_user(request), client_ip(request)
            )
        except admin.SettingsError as exc:
            current = await admin.load_settings(db_session)
            values = {**current.__dict__, "max_amount": format_amount(current.max_amount_cents)}
            return self._page(values, exc.errors, status_code=422)
        return Redirect(path="/admin/settings?saved=true", status_code=303)
