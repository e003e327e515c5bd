"""indexes for creating customers and searching at scale

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        # SQLite settles a new customer's deferred default-account key by searching
        # customer for each billing account inserted: unindexed, a scan of the whole
        # table for every customer created.
        batch_op.create_index(batch_op.f('ix_customer_default_billing_account_id'),
                              ['default_billing_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_tenant_id_mode_id'),
                              ['tenant_id', 'mode', 'id'], unique=False)
    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_id'),
                              ['tenant_id', 'mode', 'id'], unique=False)
        # Ending in id keeps these ahead of the index above in SQLite's choice.
        batch_op.drop_index('ix_billing_account_tenant_id_mode_customer_id')
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_customer_id_id'),
                              ['tenant_id', 'mode', 'customer_id', 'id'], unique=False)
        batch_op.drop_index('ix_billing_account_tenant_id_mode_status')
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_status_id'),
                              ['tenant_id', 'mode', 'status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_account_tenant_id_mode_status_id'))
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_status'),
                              ['tenant_id', 'mode', 'status'], unique=False)
        batch_op.drop_index(batch_op.f('ix_billing_account_tenant_id_mode_customer_id_id'))
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_customer_id'),
                              ['tenant_id', 'mode', 'customer_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_billing_account_tenant_id_mode_id'))
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_customer_default_billing_account_id'))
