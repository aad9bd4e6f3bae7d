"""Client pages (search, new, edit, archive, the client page) and the clients API."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.guards import ADMIN
from app.clients.schemas import ClientCreate, ClientForm, ClientList, ClientOut, ClientPatch
from app.clients.services import ClientError, ClientHasMoney, ClientService, DuplicateName
from app.web.errors import htmx_headers, sent_by_htmx

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def invalid_input(errors: dict[str, str]) -> Response[Any]:
    """The API's 422: the first problem in ``detail`` and ``field``, every one in ``errors``."""
    field, message = next(iter(errors.items()))
    return Response({"detail": message, "field": field, "errors": errors}, status_code=422)


def wants_fragment(request: Request[Any, Any, Any], target: str) -> bool:
    """An HTMX request that swaps only ``#target`` (history restores get the whole page)."""
    hx = htmx_headers(request)  # read once: the search asks at every keystroke
    return sent_by_htmx(hx) and hx.get(b"hx-target") in (None, target.encode())


class ClientController(Controller):
    path = "/clients"
    tags = ["clients"]
    include_in_schema = False

    # The media type given: Litestar otherwise works it out from the template's
    # name (pathlib and mimetypes) on every keystroke.
    @get("/", name="clients", media_type=MediaType.HTML)
    async def search(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        q: str = "",
        archived: bool = False,
    ) -> Template:
        results = await ClientService(db_session).search(q, archived=archived, summary=True)
        context = {"q": q, "archived": archived, "results": results}
        if wants_fragment(request, "client-results"):
            return Template("clients/_results.html", context=context)
        return Template("clients/list.html", context=context)

    @get("/new", name="client_new")
    async def new_form(self, name: str = "") -> Template:
        return Template("clients/form.html", context=_form_context(ClientForm(name=name)))

    @post("/", status_code=303)
    async def create(
        self, db_session: AsyncSession, data: Annotated[ClientForm, FORM]
    ) -> Template | Redirect:
        service = ClientService(db_session)
        try:
            client = await service.create(
                data.to_input(), allow_duplicate=bool(data.confirm_duplicate)
            )
        except DuplicateName as exc:
            return Template(
                "clients/form.html",
                context=_form_context(data, duplicates=exc.existing),
                status_code=422,
            )
        except ClientError as exc:
            return Template(
                "clients/form.html", context=_form_context(data, exc.errors), status_code=422
            )
        return Redirect(path=f"/clients/{client.id}", status_code=303)

    @get("/{client_id:int}", name="client")
    async def page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int,
        page: Annotated[int, Parameter(ge=1)] = 1,
    ) -> Template:
        overview = await ClientService(db_session).overview(client_id, page)
        context = {"client": overview.client, "overview": overview}
        if wants_fragment(request, "client-history"):
            return Template("clients/_history.html", context=context)
        return Template("clients/page.html", context=context)

    @get("/{client_id:int}/edit", name="client_edit")
    async def edit_form(self, db_session: AsyncSession, client_id: int) -> Template:
        client = await ClientService(db_session).get(client_id)
        form = ClientForm(
            name=client.name,
            phone=client.phone or "",
            email=client.email or "",
            notes=client.notes or "",
        )
        return Template("clients/form.html", context=_form_context(form, client=client))

    @post("/{client_id:int}/edit", status_code=303)
    async def update(
        self, db_session: AsyncSession, client_id: int, data: Annotated[ClientForm, FORM]
    ) -> Template | Redirect:
        service = ClientService(db_session)
        try:
            await service.update(client_id, data.to_input())
        except ClientError as exc:
            client = await service.get(client_id)
            return Template(
                "clients/form.html",
                context=_form_context(data, exc.errors, client=client),
                status_code=422,
            )
        return Redirect(path=f"/clients/{client_id}", status_code=303)

    @post("/{client_id:int}/archive", status_code=303)
    async def archive(self, db_session: AsyncSession, client_id: int) -> Redirect:
        await ClientService(db_session).archive(client_id)
        return Redirect(path=f"/clients/{client_id}", status_code=303)

    @post("/{client_id:int}/unarchive", status_code=303)
    async def unarchive(self, db_session: AsyncSession, client_id: int) -> Redirect:
        await ClientService(db_session).unarchive(client_id)
        return Redirect(path=f"/clients/{client_id}", status_code=303)

    @post("/{client_id:int}/delete", opt={"roles": ADMIN}, status_code=303)
    async def delete(self, db_session: AsyncSession, client_id: int) -> Redirect:
        try:
            await ClientService(db_session).delete(client_id)
        except ClientHasMoney as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        return Redirect(path="/clients", status_code=303)


def _form_context(
    form: ClientForm,
    errors: dict[str, str] | None = None,
    *,
    client: Any = None,
    duplicates: list[Any] | None = None,
) -> dict[str, Any]:
    return {"form": form, "errors": errors or {}, "client": client, "duplicates": duplicates}


class ClientApiController(Controller):
    path = "/api/v1/clients"
    tags = ["clients"]

    @get("/", summary="Search clients: every word must match the name, phone digits or e-mail.")
    async def list_clients(
        self,
        db_session: AsyncSession,
        search: str = "",
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0)] = 0,
        archived: bool = False,
    ) -> ClientList:
        page = await ClientService(db_session).search(
            search, archived=archived, limit=limit, offset=offset, count=True
        )
        return ClientList(items=[ClientOut.of(c) for c in page.items], total=page.total or 0)

    @post("/", status_code=201, summary="Add a client (the API does not warn about same names).")
    async def create_client(
        self, db_session: AsyncSession, data: ClientCreate
    ) -> Response[ClientOut]:
        try:
            client = await ClientService(db_session).create(data.to_input(), allow_duplicate=True)
        except ClientError as exc:
            return invalid_input(exc.errors)
        return Response(ClientOut.of(client), status_code=201)

    @get("/{client_id:int}", summary="One client with their balance, credit and owed.")
    async def get_client(self, db_session: AsyncSession, client_id: int) -> ClientOut:
        return ClientOut.of(await ClientService(db_session).get(client_id))

    @patch("/{client_id:int}", summary="Change the fields sent; null clears phone, e-mail, notes.")
    async def update_client(
        self, db_session: AsyncSession, client_id: int, data: ClientPatch
    ) -> Response[ClientOut]:
        service = ClientService(db_session)
        current = await service.get(client_id)
        try:
            client = await service.update(client_id, data.merged_with(current))
        except ClientError as exc:
            return invalid_input(exc.errors)
        return Response(ClientOut.of(client))

    @post("/{client_id:int}/archive", status_code=200, summary="Hide a client from searches.")
    async def archive_client(self, db_session: AsyncSession, client_id: int) -> ClientOut:
        return ClientOut.of(await ClientService(db_session).archive(client_id))

    @post("/{client_id:int}/unarchive", status_code=200, summary="Show an archived client again.")
    async def unarchive_client(self, db_session: AsyncSession, client_id: int) -> ClientOut:
        return ClientOut.of(await ClientService(db_session).unarchive(client_id))
