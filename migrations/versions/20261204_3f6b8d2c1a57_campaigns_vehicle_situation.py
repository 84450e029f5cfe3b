"""campaigns: a vehicle's «Situation» and its date (issue 12)

Revision ID: 3f6b8d2c1a57
Revises: 0583a13f668a
Create Date: 2026-12-04 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6b8d2c1a57"
down_revision: str | None = "0583a13f668a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vehicles", sa.Column("situation", sa.String(20), nullable=False, server_default="Active"),
                  schema="campaigns")
    op.add_column("vehicles", sa.Column("situation_date", sa.Date(), nullable=True), schema="campaigns")


def downgrade() -> None:
    op.drop_column("vehicles", "situation_date", schema="campaigns")
    op.drop_column("vehicles", "situation", schema="campaigns")
