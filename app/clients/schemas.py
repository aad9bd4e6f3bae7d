"""What the client forms send and what the API answers."""

from __future__ import annotations

from msgspec import UNSET, Struct, UnsetType

from app.clients.models import Client
from app.clients.services import ClientInput
from app.web.i18n import decimal_string


class ClientForm(Struct):
    """The new/edit form. ``confirm_duplicate`` comes from the "Create anyway" button."""

    name: str = ""
    phone: str = ""
    email: str = ""
    notes: str = ""
    confirm_duplicate: str = ""

    def to_input(self) -> ClientInput:
        return ClientInput(name=self.name, phone=self.phone, email=self.email, notes=self.notes)


class ClientCreate(Struct):
    name: str
    phone: str | None = None
    email: str | None = None
    notes: str | None = None

    def to_input(self) -> ClientInput:
        return ClientInput(
            name=self.name, phone=self.phone or "", email=self.email or "", notes=self.notes or ""
        )


class ClientPatch(Struct):
    """Only the fields sent are changed; ``null`` clears phone, e-mail or notes."""

    name: str | UnsetType = UNSET
    phone: str | UnsetType | None = UNSET
    email: str | UnsetType | None = UNSET
    notes: str | UnsetType | None = UNSET

    def merged_with(self, client: Client) -> ClientInput:
        def pick(sent: str | UnsetType | None, stored: str | None) -> str:
            return (stored if sent is UNSET else sent) or ""

        return ClientInput(
            name=pick(self.name, client.name),
            phone=pick(self.phone, client.phone),
            email=pick(self.email, client.email),
            notes=pick(self.notes, client.notes),
        )


class ClientOut(Struct):
    id: int
    name: str
    phone: str | None
    phone_digits: str | None
    email: str | None
    notes: str | None
    active: bool
    balance: str
    credit: str
    owed: str

    @classmethod
    def of(cls, client: Client) -> ClientOut:
        return cls(
            id=client.id,
            name=client.name,
            phone=client.phone,
            phone_digits=client.phone_digits,
            email=client.email,
            notes=client.notes,
            active=client.active,
            balance=decimal_string(client.balance_cents),
            credit=decimal_string(client.credit_cents),
            owed=decimal_string(client.owed_cents),
        )


class ClientList(Struct):
    items: list[ClientOut]
    total: int
