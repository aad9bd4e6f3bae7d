"""A believable demo practice, generated through the real services so the journal is consistent.

Deterministic: the same seed gives the same practice.
"""

from __future__ import annotations

import json
import random
import unicodedata
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Service, Setting, Staff
from app.admin.services import PracticeSettings, load_settings
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import normalise_phone, search_fields
from app.db import begin_write
from app.ledger import services as ledger
from app.ledger.models import Charge
from app.web import i18n

FIRST = [
    "Ana",
    "Beatriz",
    "Bruno",
    "Camila",
    "Carlos",
    "Daniela",
    "Eduardo",
    "Fernanda",
    "Gabriel",
    "Helena",
    "Igor",
    "Isabela",
    "João",
    "Juliana",
    "Lucas",
    "Luana",
    "Marcos",
    "Mariana",
    "Mateus",
    "Natália",
    "Otávio",
    "Paula",
    "Rafael",
    "Renata",
    "Sofia",
    "Thiago",
    "Vitória",
    "Álvaro",
    "Alejandro",
    "Carmen",
    "Diego",
    "Elena",
    "Javier",
    "Lucía",
    "Manuel",
    "Marta",
    "Pablo",
    "Pilar",
    "Sergio",
    "Inés",
    "Raúl",
    "Conceição",
    "Sebastián",
    "Begoña",
    "Iñaki",
    "Ñuria",
    "Joaquín",
    "Mônica",
    "Letícia",
    "Caio",
]
LAST = [
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Ribeiro",
    "Carvalho",
    "Almeida",
    "Conceição",
    "Araújo",
    "Barbosa",
    "Cardoso",
    "Rocha",
    "Dias",
    "Nascimento",
    "García",
    "Fernández",
    "González",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Navarro",
    "Torres",
    "Domínguez",
    "Gutiérrez",
    "Núñez",
]
STAFF = (("Dra. Marina Costa", 4000), ("Dr. Rafael Mendes", 4500), ("Lucía Herrera", 3500))
SERVICES = (
    ("Sessão individual", 20000),
    ("Sessão de casal", 28000),
    ("Avaliação inicial", 25000),
    ("Sessão online", 18000),
    ("Terapia infantil", 22000),
    ("Retorno", 12000),
    ("Relatório psicológico", 45000),
    ("Grupo terapêutico", 9000),
)
DEMO_SETTINGS = {
    "practice_name": "Clínica Bem-Estar",
    "practice_address": "Rua das Flores, 120 · São Paulo · SP",
    "currency": "BRL",
    "locale": "pt_BR",
    "timezone": "America/Sao_Paulo",
    "phone_country_code": "55",
    "due_days": 10,
    "payment_instructions": "Pix: financeiro@bemestar.example · Banco 001 Ag. 1234 C/C 56789-0",
}


def _ascii(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


async def seed(
    maker: async_sessionmaker[AsyncSession],
    *,
    n_clients: int = 200,
    seed: int = 7,
    only_if_empty: bool = False,
) -> str:
    rng = random.Random(seed)
    async with maker() as session:
        if only_if_empty and await session.scalar(select(func.count(Client.id))):
            return "demo data: the database already has clients; nothing added"
        await begin_write(session)
        actor = await session.scalar(select(User).where(User.role == "admin").order_by(User.id))
        if actor is None:
            actor = User(
                username="demo",
                display_name="Demo",
                role="admin",
                password_hash="!",
                active=False,
                auth_epoch=0,
            )
            session.add(actor)
        if not await session.scalar(select(func.count(Setting.id))):
            for key, value in DEMO_SETTINGS.items():
                session.add(Setting(key=key, value=json.dumps(value)))
        staff = [Staff(name=n, commission_bp=bp, active=True) for n, bp in STAFF]
        services = [Service(name=n, price_cents=p, active=True) for n, p in SERVICES]
        session.add_all(staff + services)
        await session.flush()
        session.expunge(actor)
        await session.commit()
        practice = await load_settings(session)

    i18n.use(practice.formatting)
    today = i18n.today()
    start = (today.replace(day=1) - timedelta(days=150)).replace(day=1)
    charges = payments = 0
    for n in range(n_clients):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}"
        phone = f"+55 11 9{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        email = f"{_ascii(name).replace(' ', '.')}{n}@example.com" if rng.random() < 0.7 else None
        async with maker() as session:
            await begin_write(session)
            name_key, search_text = search_fields(name, normalise_phone(phone, "55"), email)
            client = Client(
                name=name,
                phone=phone,
                phone_digits=normalise_phone(phone, "55"),
                email=email,
                active=True,
                name_key=name_key,
                search_text=search_text,
                credit_cents=0,
                owed_cents=0,
            )
            session.add(client)
            await session.flush()
            c, p = await _history(
                session, rng, actor, practice, client.id, staff, services, start, today
            )
            charges, payments = charges + c, payments + p
            await session.commit()
    return (
        f"demo data: {len(staff)} staff, {len(services)} services, {n_clients} clients, "
        f"{charges} sessions, {payments} payments"
    )


async def _history(
    session: AsyncSession,
    rng: random.Random,
    actor: User,
    practice: PracticeSettings,
    client_id: int,
    staff: list[Staff],
    services: list[Service],
    start: date,
    today: date,
) -> tuple[int, int]:
    """About six months of sessions: most paid on the spot, some prepaid, some left owing."""
    habit = rng.choices(["pays_now", "prepays", "monthly", "late"], weights=[5, 2, 2, 1])[0]
    every = rng.choice([7, 7, 14, 30])
    service = rng.choice(services)
    person = rng.choice(staff)
    day = start + timedelta(days=rng.randint(0, 60))
    charges = payments = 0
    if habit == "prepays":
        await ledger.record_payment(
            session,
            actor,
            practice,
            ledger.PaymentInput(client_id, service.price_cents * 4, "pix", day),
            None,
        )
        payments += 1
    while day <= today:
        data = ledger.ChargeInput(
            client_id=client_id,
            amount_cents=service.price_cents,
            day=day,
            service_id=service.id,
            staff_id=person.id,
        )
        credit = (await session.get(Client, client_id, populate_existing=True)).credit_cents
        if habit == "pays_now":
            data.pay_now_method = rng.choice(["pix", "card", "cash", "transfer"])
            payments += 1
        elif habit == "prepays":
            if credit >= service.price_cents:
                data.pay_from_credit = True
            elif rng.random() < 0.7:
                await ledger.record_payment(
                    session,
                    actor,
                    practice,
                    ledger.PaymentInput(client_id, service.price_cents * 4, "pix", day),
                    None,
                )
                payments += 1
                data.pay_from_credit = True
        await ledger.register_charge(session, actor, practice, data, None)
        charges += 1
        day += timedelta(days=every)
        # Monthly payers settle the previous month early in the next one.
        if habit in ("monthly", "late") and day.day <= every and day <= today:
            if habit == "late" and rng.random() < 0.5:
                continue
            open_rows = (
                await session.execute(
                    select(Charge.id, Charge.amount_cents - Charge.paid_cents).where(
                        Charge.client_id == client_id, Charge.status.in_(("open", "partial"))
                    )
                )
            ).all()
            if open_rows:
                await ledger.record_payment(
                    session,
                    actor,
                    practice,
                    ledger.PaymentInput(
                        client_id,
                        sum(r[1] for r in open_rows),
                        "transfer",
                        day,
                        charge_ids=[r[0] for r in open_rows],
                    ),
                    None,
                )
                payments += 1
    return charges, payments
