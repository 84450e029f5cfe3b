"""campaigns: a Workflow campaign may leave out the recipients who cannot answer its first step

Revision ID: b7c2e19f4a60
Revises: 9c4e2f7a1b30
Create Date: 2026-12-03 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7c2e19f4a60"
down_revision: str | None = "9c4e2f7a1b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("leave_out_unable", sa.Boolean(), nullable=False,
                                         server_default=sa.false()), schema="campaigns")


def downgrade() -> None:
    op.drop_column("campaigns", "leave_out_unable", schema="campaigns")
