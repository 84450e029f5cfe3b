"""workflow commands: the signal outbox also carries starts (workflow type, input, options); step notes

Revision ID: 8e1f0c2a7d13
Revises: 5c1d0e7a9b42
Create Date: 2026-12-03 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8e1f0c2a7d13"
down_revision: str | None = "5c1d0e7a9b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A row is a signal, a start, or both (signal-with-start); `start` holds what the relay needs to start the
    # workflow: its type, input and options (search attributes, summary). `kind` named a starter function: gone.
    op.alter_column("workflow_signals", "signal", existing_type=sa.String(length=80), nullable=True, schema="core")
    op.alter_column("workflow_signals", "payload", existing_type=postgresql.JSONB(astext_type=sa.Text()),
                    nullable=True, schema="core")
    op.add_column("workflow_signals", sa.Column("start", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
                  schema="core")
    op.drop_column("workflow_signals", "kind", schema="core")
    op.create_check_constraint("signal_or_start", "workflow_signals", "signal IS NOT NULL OR start IS NOT NULL",
                               schema="core")
    # A driver workflow's step that could not do its job (no address for a Mail step) says so on the suivi page.
    op.add_column("driver_workflows", sa.Column("step_note", sa.String(length=300), nullable=True),
                  schema="campaigns")


def downgrade() -> None:
    op.drop_column("driver_workflows", "step_note", schema="campaigns")
    op.drop_constraint("signal_or_start", "workflow_signals", schema="core")
    op.add_column("workflow_signals", sa.Column("kind", sa.String(length=60), nullable=True), schema="core")
    op.drop_column("workflow_signals", "start", schema="core")
    op.execute("DELETE FROM core.workflow_signals WHERE signal IS NULL")
    op.alter_column("workflow_signals", "payload", nullable=False, schema="core")
    op.alter_column("workflow_signals", "signal", nullable=False, schema="core")
