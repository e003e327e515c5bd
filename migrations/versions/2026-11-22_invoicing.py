"""invoices, bill runs and adjustments; next_bill_date on billing accounts, billed_through
on services

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bill_run',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('bill_cycle_id', sa.String(length=40), nullable=True),
    sa.Column('as_of_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('accounts_total', sa.Integer(), nullable=False),
    sa.Column('chunks_total', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['bill_cycle_id'], ['bill_cycle.id'], name=op.f('fk_bill_run_bill_cycle_id_bill_cycle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_run'))
    )
    with op.batch_alter_table('bill_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bill_run_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('bill_run_chunk',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('bill_run_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('account_ids', sa.JSON(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['bill_run_id'], ['bill_run.id'], name=op.f('fk_bill_run_chunk_bill_run_id_bill_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_run_chunk')),
    sa.UniqueConstraint('bill_run_id', 'position', name=op.f('uq_bill_run_chunk_bill_run_id_position'))
    )
    op.create_table('bill_run_failure',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('bill_run_id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['bill_run_id'], ['bill_run.id'], name=op.f('fk_bill_run_failure_bill_run_id_bill_run')),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_bill_run_failure_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_run_failure'))
    )
    with op.batch_alter_table('bill_run_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bill_run_failure_bill_run_id'), ['bill_run_id'], unique=False)

    op.create_table('billed_period',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('bill_run_id', sa.String(length=40), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('invoice_ids', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_billed_period_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billed_period')),
    sa.UniqueConstraint('tenant_id', 'mode', 'billing_account_id', 'bill_date', name=op.f('uq_billed_period_tenant_id_mode_billing_account_id_bill_date'))
    )
    with op.batch_alter_table('billed_period', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billed_period_bill_run_id_outcome'), ['bill_run_id', 'outcome'], unique=False)

    op.create_table('invoice',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('invoiced_account_id', sa.String(length=40), nullable=True),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('rendering_type', sa.String(length=20), nullable=True),
    sa.Column('bill_date', sa.Date(), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('issue_date', sa.Date(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('subtotal_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_paid_minor', sa.BigInteger(), nullable=False),
    sa.Column('adjustments_minor', sa.BigInteger(), nullable=False),
    sa.Column('assignment_key', sa.String(length=100), nullable=True),
    sa.Column('bill_run_id', sa.String(length=40), nullable=True),
    sa.Column('carried_to_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('pdf_key', sa.String(length=300), nullable=True),
    sa.Column('delivery_status', sa.String(length=20), nullable=False),
    sa.Column('delivery_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finalized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_invoice_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_invoice_customer_id_customer')),
    sa.ForeignKeyConstraint(['invoiced_account_id'], ['billing_account.id'], name=op.f('fk_invoice_invoiced_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice'))
    )
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_bill_run_id'), ['bill_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_assignment_key'), ['tenant_id', 'mode', 'assignment_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_invoiced_account_id_status'), ['tenant_id', 'mode', 'invoiced_account_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_issue_date_id'), ['tenant_id', 'mode', 'issue_date', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_number'), ['tenant_id', 'mode', 'number'], unique=True)
        batch_op.create_index(batch_op.f('ix_invoice_tenant_id_mode_status_id'), ['tenant_id', 'mode', 'status', 'id'], unique=False)

    op.create_table('adjustment',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('applied_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_adjustment_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_adjustment_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustment'))
    )
    with op.batch_alter_table('adjustment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adjustment_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_adjustment_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('invoice_line',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_percent', sa.String(length=12), nullable=True),
    sa.Column('tax_rate_id', sa.String(length=40), nullable=True),
    sa.Column('tax_exemption_certificate', sa.String(length=100), nullable=True),
    sa.Column('tax_inclusive', sa.Boolean(), nullable=False),
    sa.Column('tax_category', sa.String(length=40), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('service_id', sa.String(length=40), nullable=True),
    sa.Column('pending_charge_id', sa.String(length=40), nullable=True),
    sa.Column('adjustment_id', sa.String(length=40), nullable=True),
    sa.Column('carried_from_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_invoice_line_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_line_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_line'))
    )
    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_line_invoice_id_position'), ['invoice_id', 'position'], unique=False)

    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_bill_date', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_billing_account_tenant_id_mode_status_next_bill_date'), ['tenant_id', 'mode', 'status', 'next_bill_date'], unique=False)

    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billed_through', sa.Date(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.drop_column('billed_through')

    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_account_tenant_id_mode_status_next_bill_date'))
        batch_op.drop_column('next_bill_date')

    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_line_invoice_id_position'))

    op.drop_table('invoice_line')
    with op.batch_alter_table('adjustment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adjustment_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_adjustment_tenant_id_mode_billing_account_id_id'))

    op.drop_table('adjustment')
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_status_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_number'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_issue_date_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_invoiced_account_id_status'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_billing_account_id_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_tenant_id_mode_assignment_key'))
        batch_op.drop_index(batch_op.f('ix_invoice_bill_run_id'))

    op.drop_table('invoice')
    with op.batch_alter_table('billed_period', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billed_period_bill_run_id_outcome'))

    op.drop_table('billed_period')
    with op.batch_alter_table('bill_run_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bill_run_failure_bill_run_id'))

    op.drop_table('bill_run_failure')
    op.drop_table('bill_run_chunk')
    with op.batch_alter_table('bill_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bill_run_tenant_id_mode_id'))

    op.drop_table('bill_run')
