"""core: «Mot de passe oublié ?» requests, counted by the per-address and per-client rate limits

Revision ID: 0583a13f668a
Revises: b7c2e19f4a60
Create Date: 2026-12-04 01:01:48
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0583a13f668a"
down_revision: str | None = "b7c2e19f4a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "password_reset_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["core.users.id"], name=op.f("fk_password_reset_requests_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_requests")),
        schema="core",
    )
    op.create_index("ix_password_reset_requests_client", "password_reset_requests", ["client", "requested_at"],
                    schema="core")
    op.create_index("ix_password_reset_requests_email", "password_reset_requests", ["email", "requested_at"],
                    schema="core")


def downgrade() -> None:
    op.drop_index("ix_password_reset_requests_email", table_name="password_reset_requests", schema="core")
    op.drop_index("ix_password_reset_requests_client", table_name="password_reset_requests", schema="core")
    op.drop_table("password_reset_requests", schema="core")
