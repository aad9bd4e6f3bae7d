"""Admin pages for a client's data rights: download everything held about them, anonymise them."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.controllers import client_ip, current_user
from app.auth.guards import ADMIN
from app.clients import privacy
from app.clients.controllers import FORM
from app.clients.models import Client
from app.exports.csvfmt import content_disposition


class ClientPrivacyController(Controller):
    path = "/clients/{client_id:int}"
    tags = ["clients"]
    include_in_schema = False
    opt = {"roles": ADMIN}

    @get("/data.zip", name="client_data_export", opt={"roles": ADMIN})
    async def export(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, client_id: int
    ) -> Response[bytes]:
        """Everything held about the client as one ZIP (audited)."""
        try:
            filename, content = await privacy.export_client_data(
                db_session,
                client_id,
                request.state.practice,
                current_user(request),
                client_ip(request),
            )
        except LookupError:
            raise NotFoundException() from None
        return Response(
            content,
            media_type="application/zip",
            headers={"Content-Disposition": content_disposition(filename)},
        )

    @get("/anonymise", name="client_anonymise", opt={"roles": ADMIN})
    async def confirm_page(self, db_session: AsyncSession, client_id: int) -> Template:
        """What anonymising does, and the form that asks for the client's name to confirm."""
        return _page(await _client(db_session, client_id))

    @post("/anonymise", opt={"roles": ADMIN}, status_code=303)
    async def anonymise(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int,
        data: Annotated[dict[str, str], FORM],
    ) -> Template | Redirect:
        try:
            await privacy.anonymise_client(
                db_session,
                client_id,
                data.get("confirmation", ""),
                current_user(request),
                client_ip(request),
            )
        except LookupError:
            raise NotFoundException() from None
        except privacy.PrivacyError as exc:
            client = await _client(db_session, client_id)
            return _page(client, exc.errors, data.get("confirmation", ""), exc.status_code)
        return Redirect(path=f"/clients/{client_id}", status_code=303)


async def _client(session: AsyncSession, client_id: int) -> Client:
    client = await session.get(Client, client_id)
    if client is None:
        raise NotFoundException()
    return client


def _page(
    client: Client, errors: dict[str, str] | None = None, confirmation: str = "", status: int = 200
) -> Template:
    return Template(
        "clients/privacy.html",
        context={
            "client": client,
            "errors": errors or {},
            "confirmation": confirmation,
            "pseudonym": privacy.pseudonym(client.id),
        },
        status_code=status,
    )
