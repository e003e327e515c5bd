"""tax rates and tax exemptions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tax_rate',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=True),
    sa.Column('tax_category', sa.String(length=40), nullable=False),
    sa.Column('percent', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.CheckConstraint('valid_to IS NULL OR valid_to >= valid_from', name=op.f('ck_tax_rate_valid_period')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tax_rate')),
    sa.UniqueConstraint('tenant_id', 'mode', 'country', 'region', 'tax_category', 'valid_from', name='uq_tax_rate_tenant_id_mode_rule_valid_from')
    )
    op.create_table('tax_exemption',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('certificate_number', sa.String(length=60), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.CheckConstraint('valid_to IS NULL OR valid_to >= valid_from', name=op.f('ck_tax_exemption_valid_period')),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_tax_exemption_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tax_exemption')),
    sa.UniqueConstraint('tenant_id', 'mode', 'billing_account_id', 'certificate_number', 'country', 'region', 'valid_from', name='uq_tax_exemption_tenant_id_mode_certificate_valid_from')
    )
    with op.batch_alter_table('tax_exemption', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tax_exemption_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tax_exemption', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tax_exemption_tenant_id_mode_billing_account_id_id'))

    op.drop_table('tax_exemption')
    op.drop_table('tax_rate')
