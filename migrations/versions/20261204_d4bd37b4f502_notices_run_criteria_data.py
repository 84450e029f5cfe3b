"""notices: what every run criterion reads on a receipt («Nature» quittance / acomptes, «Reste dû», «Pollicitation»,
«Avance cabinet»), runs with nothing to make («Aucun avis à éditer»), first answers of the notice actions API

Revision ID: d4bd37b4f502
Revises: e4a7c1d9b352
Create Date: 2026-12-04 02:31:22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d4bd37b4f502"
down_revision: str | None = "e4a7c1d9b352"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('quittance', 'acompte_affecte', 'acompte_libre', 'appel_acomptes')"
RUN_STATUSES = "'preparing', 'rendering', 'awaiting_answer', 'confirmed', 'declined', 'expired', 'failed'"


def upgrade() -> None:
    # Existing receipts stay what they were: premium receipts, nothing owed, no offer, no broker advance.
    op.add_column("receipts", sa.Column("kind", sa.String(20), server_default="quittance", nullable=False),
                  schema="notices")
    op.add_column("receipts", sa.Column("outstanding", sa.Numeric(12, 2), server_default="0", nullable=False),
                  schema="notices")
    op.add_column("receipts", sa.Column("is_proposal", sa.Boolean(), server_default=sa.false(), nullable=False),
                  schema="notices")
    op.add_column("receipts", sa.Column("broker_advance", sa.Boolean(), server_default=sa.false(), nullable=False),
                  schema="notices")
    op.create_check_constraint(op.f("ck_receipts_kind"), "receipts", KINDS, schema="notices")
    op.create_check_constraint(op.f("ck_receipts_outstanding"), "receipts", "outstanding >= 0", schema="notices")
    op.drop_constraint(op.f("ck_runs_run_status"), "runs", schema="notices", type_="check")
    op.create_check_constraint(op.f("ck_runs_run_status"), "runs", f"status IN ({RUN_STATUSES}, 'empty')",
                               schema="notices")
    op.create_table(
        "api_replies",
        sa.Column("jti", sa.String(40), nullable=False),
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        sa.Column("answer", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["core.organisations.id"],
                                name=op.f("fk_api_replies_organisation_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_api_replies")),
        schema="notices",
    )
    op.create_index(op.f("ix_notices_api_replies_organisation_id"), "api_replies", ["organisation_id"],
                    schema="notices")


def downgrade() -> None:
    op.drop_index(op.f("ix_notices_api_replies_organisation_id"), table_name="api_replies", schema="notices")
    op.drop_table("api_replies", schema="notices")
    op.execute("UPDATE notices.runs SET status = 'declined' WHERE status = 'empty'")
    op.drop_constraint(op.f("ck_runs_run_status"), "runs", schema="notices", type_="check")
    op.create_check_constraint(op.f("ck_runs_run_status"), "runs", f"status IN ({RUN_STATUSES})", schema="notices")
    op.drop_constraint(op.f("ck_receipts_outstanding"), "receipts", schema="notices", type_="check")
    op.drop_constraint(op.f("ck_receipts_kind"), "receipts", schema="notices", type_="check")
    op.drop_column("receipts", "broker_advance", schema="notices")
    op.drop_column("receipts", "is_proposal", schema="notices")
    op.drop_column("receipts", "outstanding", schema="notices")
    op.drop_column("receipts", "kind", schema="notices")
