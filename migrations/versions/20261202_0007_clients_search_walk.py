"""client search reads names in order from one index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:00:00

The search box shows the first clients by name whose search text contains
every typed word. For a word that many clients share, the database walks the
clients in name order and keeps those that match; with the search text in
the name index that walk reads the index alone, instead of one table page
per client (at 50,000 clients: 9 ms → 2 ms for a frequent first name). It
replaces the (active, name_key) index, of which it is an extension.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_index("ix_clients_active_name")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_clients_active_name",
            "clients",
            ["active", "name_key", "id"],
            postgresql_include=["search_text"],
        )
    else:
        # SQLite has no INCLUDE: the search text is the last key column instead.
        op.create_index(
            "ix_clients_active_name", "clients", ["active", "name_key", "id", "search_text"]
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_index("ix_clients_active_name")
        batch_op.create_index("ix_clients_active_name", ["active", "name_key"], unique=False)
