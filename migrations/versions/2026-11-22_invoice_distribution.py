"""invoice distribution rules (GTV's Distribute Invoice notification)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invoice_distribution_rule',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=True),
    sa.Column('contact_category', sa.String(length=50), nullable=True),
    sa.Column('applies_to', sa.String(length=120), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_invoice_distribution_rule_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_distribution_rule')),
    sa.UniqueConstraint('tenant_id', 'mode', 'applies_to', name=op.f('uq_invoice_distribution_rule_tenant_id_mode_applies_to'))
    )


def downgrade() -> None:
    op.drop_table('invoice_distribution_rule')
