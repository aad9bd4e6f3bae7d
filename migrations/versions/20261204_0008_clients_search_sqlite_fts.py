"""client search on SQLite finds its candidates through a trigram index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 05:40:00

SQLite has no trigram index like PostgreSQL's pg_trgm, so a search for a word
few clients have walked every client in name order (at 50,000 clients, about
6 ms for a name nobody has, the database in memory). ``clients_search`` is an
FTS5 table with the trigram tokenizer over ``clients.search_text`` (external
content: it keeps the index, the text stays in ``clients``), kept up to date
by triggers on every write to clients, whichever code path makes it. The
search asks it for the clients whose text holds each word of 3+ characters
(see ``ClientService.search``): about 1 ms for that name. PostgreSQL is
unchanged.

A later migration that rebuilds ``clients`` on SQLite (``batch_alter_table``
with a table copy) drops these triggers with the old table and must create
them again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    """CREATE TRIGGER clients_search_insert AFTER INSERT ON clients BEGIN
        INSERT INTO clients_search (rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    """CREATE TRIGGER clients_search_delete AFTER DELETE ON clients BEGIN
        INSERT INTO clients_search (clients_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    END""",
    """CREATE TRIGGER clients_search_update AFTER UPDATE OF id, search_text ON clients BEGIN
        INSERT INTO clients_search (clients_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
        INSERT INTO clients_search (rowid, search_text) VALUES (new.id, new.search_text);
    END""",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    version = bind.exec_driver_sql("SELECT sqlite_version()").scalar_one()
    if tuple(int(part) for part in version.split(".")[:2]) < (3, 34):
        raise RuntimeError(
            f"Saldo needs SQLite 3.34 or newer (its trigram search index); this Python "
            f"has SQLite {version}. Use a newer Python build, or PostgreSQL (DATABASE_URL)."
        )
    op.execute(
        "CREATE VIRTUAL TABLE clients_search USING fts5("
        "search_text, content='clients', content_rowid='id', tokenize='trigram')"
    )
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.execute("INSERT INTO clients_search (clients_search) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER clients_search_{name}")
    op.execute("DROP TABLE clients_search")
