"""removals: Prévenu once the deposer's mail is accepted (notified_at), «Emplacement déclaré» of a vehicle,
alert recipients of a request

Revision ID: e4a7c1d9b352
Revises: b7c2e19f4a60
Create Date: 2026-12-04 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e4a7c1d9b352"
down_revision: str | None = "b7c2e19f4a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mandates", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True), schema="removals")
    # What was Prévenu (or beyond) before: told when it last changed, as far as we know.
    op.execute("UPDATE removals.mandates SET notified_at = updated_at WHERE status <> 'nouvelle'")
    op.add_column("vehicles", sa.Column("declared_location", sa.String(60), nullable=True), schema="removals")
    op.add_column("requests", sa.Column("alert_emails", postgresql.JSONB(), nullable=False,
                                        server_default=sa.text("'[]'::jsonb")), schema="removals")


def downgrade() -> None:
    op.drop_column("requests", "alert_emails", schema="removals")
    op.drop_column("vehicles", "declared_location", schema="removals")
    op.drop_column("mandates", "notified_at", schema="removals")
