"""client anonymised_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:00:00

When a client's personal data was replaced by a pseudonym on their request
(NULL: never). Their money records stay; the column tells the app not to
anonymise twice and not to accept their details again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anonymised_at", DateTimeUTC(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("anonymised_at")
