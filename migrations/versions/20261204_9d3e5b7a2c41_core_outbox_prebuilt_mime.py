"""core: the outbox keeps each message's MIME bytes, built when the row is written (bulk senders only send them)

Revision ID: 9d3e5b7a2c41
Revises: d4bd37b4f502
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d3e5b7a2c41"
down_revision: str | None = "d4bd37b4f502"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: rows written before are built by the sender, as they always were.
    op.add_column("outbox", sa.Column("mime", sa.LargeBinary(), nullable=True), schema="core")


def downgrade() -> None:
    op.drop_column("outbox", "mime", schema="core")
