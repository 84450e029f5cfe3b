"""workflow signals outbox

Revision ID: 5c1d0e7a9b42
Revises: 3b2aed99ddf9
Create Date: 2026-12-01 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5c1d0e7a9b42"
down_revision: str | None = "3b2aed99ddf9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_signals",
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("signal", sa.String(length=80), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("task_queue", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["core.organisations.id"],
                                name=op.f("fk_workflow_signals_organisation_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_signals")),
        schema="core",
    )
    op.create_index(op.f("ix_core_workflow_signals_organisation_id"), "workflow_signals", ["organisation_id"],
                    unique=False, schema="core")
    op.create_index("ix_workflow_signals_pending", "workflow_signals", ["task_queue", "id"], unique=False,
                    schema="core", postgresql_where=sa.text("delivered_at IS NULL"))
    # Wake the relay (core.signals) at the commit of any transaction that queued a signal.
    op.execute("""
        CREATE FUNCTION core.notify_workflow_signals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('relais_signals', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER workflow_signals_notify AFTER INSERT ON core.workflow_signals
            FOR EACH STATEMENT EXECUTE FUNCTION core.notify_workflow_signals();
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER workflow_signals_notify ON core.workflow_signals")
    op.execute("DROP FUNCTION core.notify_workflow_signals()")
    op.drop_index("ix_workflow_signals_pending", table_name="workflow_signals", schema="core",
                  postgresql_where=sa.text("delivered_at IS NULL"))
    op.drop_index(op.f("ix_core_workflow_signals_organisation_id"), table_name="workflow_signals", schema="core")
    op.drop_table("workflow_signals", schema="core")
