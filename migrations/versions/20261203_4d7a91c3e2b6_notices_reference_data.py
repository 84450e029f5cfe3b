"""notices: legal entities, clients, contracts, premium receipts and the notices' PDFs as sent (schema notices)

Revision ID: 4d7a91c3e2b6
Revises: 8e1f0c2a7d13
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d7a91c3e2b6"
down_revision: str | None = "8e1f0c2a7d13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A stored notice is the proof of what was sent: the database itself refuses to change it.
IMMUTABLE = """
CREATE FUNCTION notices.documents_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'un avis d''échéance enregistré ne se modifie pas (document %)', OLD.id
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER documents_immutable BEFORE UPDATE ON notices.documents
  FOR EACH ROW EXECUTE FUNCTION notices.documents_immutable();
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS notices")
    op.create_table('clients',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=20), nullable=True),
    sa.Column('last_name', sa.String(length=120), nullable=False),
    sa.Column('first_name', sa.String(length=120), nullable=True),
    sa.Column('address1', sa.String(length=200), nullable=False),
    sa.Column('address2', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=False),
    sa.Column('town', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('notice_by_email', sa.Boolean(), nullable=False),
    sa.Column('account_manager', sa.String(length=120), nullable=True),
    sa.Column('account_manager_email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=1), nullable=True),
    sa.Column('no_solicitation', sa.Boolean(), nullable=False),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IS NULL OR status IN ('C', 'D', 'P')", name=op.f('ck_clients_status_letter')),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_clients_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('organisation_id', 'number', name=op.f('uq_clients_organisation_id')),
    schema='notices'
    )
    op.create_index(op.f('ix_notices_clients_organisation_id'), 'clients', ['organisation_id'], unique=False, schema='notices')
    op.create_table('legal_entities',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address1', sa.String(length=200), nullable=False),
    sa.Column('address2', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=False),
    sa.Column('town', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('fax', sa.String(length=30), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('vat_number', sa.String(length=30), nullable=True),
    sa.Column('letter_town', sa.String(length=100), nullable=False),
    sa.Column('next_notice_no', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('next_notice_no >= 1', name=op.f('ck_legal_entities_next_notice_no_positive')),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_legal_entities_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_entities')),
    sa.UniqueConstraint('organisation_id', 'code', name=op.f('uq_legal_entities_organisation_id')),
    schema='notices'
    )
    op.create_index(op.f('ix_notices_legal_entities_organisation_id'), 'legal_entities', ['organisation_id'], unique=False, schema='notices')
    op.create_table('contracts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.Column('legal_entity_id', sa.BigInteger(), nullable=False),
    sa.Column('insurer', sa.String(length=120), nullable=False),
    sa.Column('category', sa.String(length=120), nullable=False),
    sa.Column('observations', sa.Text(), nullable=True),
    sa.Column('tacit_renewal', sa.Boolean(), nullable=False),
    sa.Column('notice_period_months', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('notice_period_months BETWEEN 0 AND 12', name=op.f('ck_contracts_notice_period')),
    sa.ForeignKeyConstraint(['client_id'], ['notices.clients.id'], name=op.f('fk_contracts_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['legal_entity_id'], ['notices.legal_entities.id'], name=op.f('fk_contracts_legal_entity_id_legal_entities'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_contracts_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts')),
    sa.UniqueConstraint('organisation_id', 'number', name=op.f('uq_contracts_organisation_id')),
    schema='notices'
    )
    op.create_index(op.f('ix_notices_contracts_client_id'), 'contracts', ['client_id'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_contracts_legal_entity_id'), 'contracts', ['legal_entity_id'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_contracts_organisation_id'), 'contracts', ['organisation_id'], unique=False, schema='notices')
    op.create_table('receipts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('effect_date', sa.Date(), nullable=False),
    sa.Column('entry_date', sa.Date(), nullable=False),
    sa.Column('debit_month', sa.Date(), nullable=False),
    sa.Column('collection', sa.String(length=10), nullable=False),
    sa.Column('receipt_type', sa.String(length=10), nullable=False),
    sa.Column('premium_ht', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('taxes', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('fees', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('total_ttc', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('edition_date', sa.Date(), nullable=True),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("collection IN ('confie', 'direct')", name=op.f('ck_receipts_collection')),
    sa.CheckConstraint("receipt_type IN ('terme', 'comptant')", name=op.f('ck_receipts_receipt_type')),
    sa.CheckConstraint('period_end >= period_start', name=op.f('ck_receipts_period_order')),
    sa.CheckConstraint('total_ttc = premium_ht + taxes + fees', name=op.f('ck_receipts_total')),
    sa.ForeignKeyConstraint(['contract_id'], ['notices.contracts.id'], name=op.f('fk_receipts_contract_id_contracts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_receipts_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts')),
    sa.UniqueConstraint('organisation_id', 'number', name=op.f('uq_receipts_organisation_id')),
    schema='notices'
    )
    op.create_index(op.f('ix_notices_receipts_contract_id'), 'receipts', ['contract_id'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_receipts_effect_date'), 'receipts', ['effect_date'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_receipts_organisation_id'), 'receipts', ['organisation_id'], unique=False, schema='notices')
    op.create_table('documents',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('legal_entity_id', sa.BigInteger(), nullable=False),
    sa.Column('notice_number', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=True),
    sa.Column('receipt_id', sa.BigInteger(), nullable=True),
    sa.Column('storage_key', sa.String(length=120), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('organisation_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['notices.clients.id'], name=op.f('fk_documents_client_id_clients')),
    sa.ForeignKeyConstraint(['legal_entity_id'], ['notices.legal_entities.id'], name=op.f('fk_documents_legal_entity_id_legal_entities')),
    sa.ForeignKeyConstraint(['organisation_id'], ['core.organisations.id'], name=op.f('fk_documents_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['receipt_id'], ['notices.receipts.id'], name=op.f('fk_documents_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('legal_entity_id', 'notice_number', name=op.f('uq_documents_legal_entity_id')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_documents_storage_key')),
    schema='notices'
    )
    op.create_index(op.f('ix_notices_documents_client_id'), 'documents', ['client_id'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_documents_organisation_id'), 'documents', ['organisation_id'], unique=False, schema='notices')
    op.create_index(op.f('ix_notices_documents_receipt_id'), 'documents', ['receipt_id'], unique=False, schema='notices')

    op.execute(IMMUTABLE)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS documents_immutable ON notices.documents")
    op.execute("DROP FUNCTION IF EXISTS notices.documents_immutable()")
    op.drop_index(op.f('ix_notices_documents_receipt_id'), table_name='documents', schema='notices')
    op.drop_index(op.f('ix_notices_documents_organisation_id'), table_name='documents', schema='notices')
    op.drop_index(op.f('ix_notices_documents_client_id'), table_name='documents', schema='notices')
    op.drop_table('documents', schema='notices')
    op.drop_index(op.f('ix_notices_receipts_organisation_id'), table_name='receipts', schema='notices')
    op.drop_index(op.f('ix_notices_receipts_effect_date'), table_name='receipts', schema='notices')
    op.drop_index(op.f('ix_notices_receipts_contract_id'), table_name='receipts', schema='notices')
    op.drop_table('receipts', schema='notices')
    op.drop_index(op.f('ix_notices_contracts_organisation_id'), table_name='contracts', schema='notices')
    op.drop_index(op.f('ix_notices_contracts_legal_entity_id'), table_name='contracts', schema='notices')
    op.drop_index(op.f('ix_notices_contracts_client_id'), table_name='contracts', schema='notices')
    op.drop_table('contracts', schema='notices')
    op.drop_index(op.f('ix_notices_legal_entities_organisation_id'), table_name='legal_entities', schema='notices')
    op.drop_table('legal_entities', schema='notices')
    op.drop_index(op.f('ix_notices_clients_organisation_id'), table_name='clients', schema='notices')
    op.drop_table('clients', schema='notices')

    op.execute("DROP SCHEMA IF EXISTS notices")
