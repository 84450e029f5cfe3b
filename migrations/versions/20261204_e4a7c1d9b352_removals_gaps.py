"""removals: Prévenu once the deposer's mail is accepted (notified_at), «Emplacement déclaré» of a vehicle,
alert recipients of a request, lieu and date free unless the requester's account requires them

Revision ID: e4a7c1d9b352
Revises: 28642691f8f4
Create Date: 2026-12-04 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e4a7c1d9b352"
down_revision: str | None = "28642691f8f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mandates", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True), schema="removals")
    # What was Prévenu (or beyond) before: told when it last changed, as far as we know.
    op.execute("UPDATE removals.mandates SET notified_at = updated_at WHERE status <> 'nouvelle'")
    op.add_column("vehicles", sa.Column("declared_location", sa.String(60), nullable=True), schema="removals")
    op.add_column("requests", sa.Column("alert_emails", postgresql.JSONB(), nullable=False,
                                        server_default=sa.text("'[]'::jsonb")), schema="removals")
    op.add_column("accounts", sa.Column("place_date_required", sa.Boolean(), nullable=False,
                                        server_default=sa.false()), schema="removals")
    op.alter_column("mandates", "lieu", existing_type=sa.String(200), nullable=True, schema="removals")
    op.alter_column("mandates", "desired_date", existing_type=sa.Date(), nullable=True, schema="removals")


def downgrade() -> None:
    op.execute("UPDATE removals.mandates SET lieu = '' WHERE lieu IS NULL")
    op.execute("UPDATE removals.mandates SET desired_date = created.day FROM (SELECT id, created_at::date AS day "
               "FROM removals.requests) created WHERE created.id = request_id AND desired_date IS NULL")
    op.alter_column("mandates", "desired_date", existing_type=sa.Date(), nullable=False, schema="removals")
    op.alter_column("mandates", "lieu", existing_type=sa.String(200), nullable=False, schema="removals")
    op.drop_column("accounts", "place_date_required", schema="removals")
    op.drop_column("requests", "alert_emails", schema="removals")
    op.drop_column("vehicles", "declared_location", schema="removals")
    op.drop_column("mandates", "notified_at", schema="removals")
