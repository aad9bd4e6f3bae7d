"""entries by kind and date

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:15:00

The reports sum one kind of journal entry over a period (money received:
payments and reversals; billed: charges and voids). With the amount in the
index those sums are read from the index alone, without visiting the table:
the dashboard's twelve months are a few hundred thousand index rows at the
scale of a large practice instead of a million table rows.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_entries_kind_date", "entries", ["kind", "effective_date", "amount_cents"])


def downgrade() -> None:
    op.drop_index("ix_entries_kind_date", table_name="entries")
