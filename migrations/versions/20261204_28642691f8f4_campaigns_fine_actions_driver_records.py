"""campaigns: «Workflow activé» per fine, a deleted fine keeps its follow-up, who entered a driver's
information and which workflow asked for a reading

Revision ID: 28642691f8f4
Revises: 3f6b8d2c1a57
Create Date: 2026-12-04 00:51:33.568712
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '28642691f8f4'
down_revision: str | None = '3f6b8d2c1a57'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('driver_info_entries',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('driver_id', sa.BigInteger(), nullable=False),
    sa.Column('permis_numero', sa.String(length=40), nullable=True),
    sa.Column('permis_date', sa.Date(), nullable=True),
    sa.Column('permis_categories', sa.String(length=60), nullable=True),
    sa.Column('adresse', sa.String(length=300), nullable=True),
    sa.Column('code_postal', sa.String(length=10), nullable=True),
    sa.Column('ville', sa.String(length=120), nullable=True),
    sa.Column('workflow_name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['driver_id'], ['campaigns.drivers.id'], name=op.f('fk_driver_info_entries_driver_id_drivers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_driver_info_entries_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_driver_info_entries')),
    schema='campaigns'
    )
    op.create_index(op.f('ix_campaigns_driver_info_entries_organisation_id'), 'driver_info_entries', ['organisation_id'], unique=False, schema='campaigns')
    op.create_index('ix_driver_info_entries_driver_created', 'driver_info_entries', ['driver_id', 'created_at'], unique=False, schema='campaigns')
    op.drop_constraint(op.f('fk_driver_workflows_fine_id_fines'), 'driver_workflows', schema='campaigns', type_='foreignkey')
    op.create_foreign_key(op.f('fk_driver_workflows_fine_id_fines'), 'driver_workflows', 'fines', ['fine_id'], ['id'], source_schema='campaigns', referent_schema='campaigns', ondelete='SET NULL')
    op.add_column('fines', sa.Column('workflow_enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False), schema='campaigns')
    op.execute("UPDATE campaigns.fines SET workflow_enabled = true WHERE workflow_id IS NOT NULL")
    op.add_column('odometer_readings', sa.Column('workflow_name', sa.String(length=200), nullable=True), schema='campaigns')


def downgrade() -> None:
    op.drop_column('odometer_readings', 'workflow_name', schema='campaigns')
    op.drop_column('fines', 'workflow_enabled', schema='campaigns')
    op.drop_constraint(op.f('fk_driver_workflows_fine_id_fines'), 'driver_workflows', schema='campaigns', type_='foreignkey')
    op.create_foreign_key(op.f('fk_driver_workflows_fine_id_fines'), 'driver_workflows', 'fines', ['fine_id'], ['id'], source_schema='campaigns', referent_schema='campaigns', ondelete='CASCADE')
    op.drop_index('ix_driver_info_entries_driver_created', table_name='driver_info_entries', schema='campaigns')
    op.drop_index(op.f('ix_campaigns_driver_info_entries_organisation_id'), table_name='driver_info_entries', schema='campaigns')
    op.drop_table('driver_info_entries', schema='campaigns')
