"""payments

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:10:34.928365
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blocked_bank_account',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('return_code', sa.String(length=3), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_blocked_bank_account')),
    sa.UniqueConstraint('tenant_id', 'mode', 'fingerprint', name=op.f('uq_blocked_bank_account_tenant_id_mode_fingerprint'))
    )
    op.create_table('gateway_notification',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('gateway', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_notification')),
    sa.UniqueConstraint('tenant_id', 'mode', 'gateway', 'event_id', name=op.f('uq_gateway_notification_tenant_id_mode_gateway_event_id'))
    )
    op.create_table('pay_session',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('payers', sa.JSON(), nullable=False),
    sa.Column('create_customer_record', sa.Boolean(), nullable=False),
    sa.Column('allow_card', sa.Boolean(), nullable=False),
    sa.Column('allow_ach', sa.Boolean(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('return_url', sa.String(length=2000), nullable=True),
    sa.Column('postback_url', sa.String(length=2000), nullable=True),
    sa.Column('css_url', sa.String(length=2000), nullable=True),
    sa.Column('biller_reference', sa.String(length=200), nullable=True),
    sa.Column('view_mode', sa.Integer(), nullable=False),
    sa.Column('page_load_override', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=20), nullable=True),
    sa.Column('entry_id', sa.String(length=40), nullable=True),
    sa.Column('payment_id', sa.String(length=40), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pay_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_pay_session_token_hash'))
    )
    with op.batch_alter_table('pay_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pay_session_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('entry',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('assignment_key', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('order_id', sa.String(length=40), nullable=True),
    sa.Column('pay_session_id', sa.String(length=40), nullable=True),
    sa.Column('payment_id', sa.String(length=40), nullable=True),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('return_url', sa.String(length=2000), nullable=True),
    sa.Column('postback_url', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('balanced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_entry_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry')),
    sa.UniqueConstraint('tenant_id', 'mode', 'assignment_key', name=op.f('uq_entry_tenant_id_mode_assignment_key'))
    )
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('payment',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('submission_key', sa.String(length=200), nullable=False),
    sa.Column('pay_session_id', sa.String(length=40), nullable=True),
    sa.Column('entry_id', sa.String(length=40), nullable=True),
    sa.Column('billing_account_id', sa.String(length=40), nullable=True),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('gateway', sa.String(length=20), nullable=False),
    sa.Column('gateway_reference', sa.String(length=100), nullable=True),
    sa.Column('instrument_token', sa.String(length=100), nullable=True),
    sa.Column('brand', sa.String(length=20), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('exp_month', sa.Integer(), nullable=True),
    sa.Column('exp_year', sa.Integer(), nullable=True),
    sa.Column('routing_number', sa.String(length=9), nullable=True),
    sa.Column('account_type', sa.String(length=10), nullable=True),
    sa.Column('holder_name', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('failure_code', sa.String(length=40), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('return_code', sa.String(length=3), nullable=True),
    sa.Column('receipt_number', sa.String(length=40), nullable=True),
    sa.Column('payer_name', sa.String(length=200), nullable=True),
    sa.Column('payer_email', sa.String(length=320), nullable=True),
    sa.Column('remote_ip', sa.String(length=45), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('payment_date', sa.Date(), nullable=False),
    sa.Column('settles_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_payment_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['pay_session_id'], ['pay_session.id'], name=op.f('fk_payment_pay_session_id_pay_session')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment')),
    sa.UniqueConstraint('tenant_id', 'mode', 'submission_key', name=op.f('uq_payment_tenant_id_mode_submission_key'))
    )
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_gateway_gateway_reference'), ['gateway', 'gateway_reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_pay_session_id'), ['pay_session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_tenant_id_mode_receipt_number'), ['tenant_id', 'mode', 'receipt_number'], unique=True)
        batch_op.create_index(batch_op.f('ix_payment_tenant_id_mode_status_id'), ['tenant_id', 'mode', 'status', 'id'], unique=False)

    op.create_table('dispute',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_dispute_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute'))
    )
    with op.batch_alter_table('dispute', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispute_payment_id'), ['payment_id'], unique=False)

    op.create_table('payment_allocation',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('invoice_number', sa.String(length=100), nullable=True),
    sa.Column('billing_account_id', sa.String(length=40), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_payment_allocation_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_payment_allocation_invoice_id_invoice')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_payment_allocation_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_allocation'))
    )
    with op.batch_alter_table('payment_allocation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_allocation_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_allocation_payment_id'), ['payment_id'], unique=False)

    op.create_table('refund',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('gateway_reference', sa.String(length=100), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_refund_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund')),
    sa.UniqueConstraint('tenant_id', 'mode', 'idempotency_key', name=op.f('uq_refund_tenant_id_mode_idempotency_key'))
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_payment_id'), ['payment_id'], unique=False)

    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_confirmations', sa.Boolean(), server_default=sa.true(), nullable=False))

    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment_key', sa.String(length=100), nullable=True))

    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_origins', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('allow_private_postback_targets', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('pay_session_minutes', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('ach_return_fee_minor', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('clock_offset_days', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.drop_column('clock_offset_days')
        batch_op.drop_column('ach_return_fee_minor')
        batch_op.drop_column('pay_session_minutes')
        batch_op.drop_column('allow_private_postback_targets')
        batch_op.drop_column('allowed_origins')

    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_column('assignment_key')

    with op.batch_alter_table('billing_account', schema=None) as batch_op:
        batch_op.drop_column('email_confirmations')

    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_payment_id'))

    op.drop_table('refund')
    with op.batch_alter_table('payment_allocation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_allocation_payment_id'))
        batch_op.drop_index(batch_op.f('ix_payment_allocation_invoice_id'))

    op.drop_table('payment_allocation')
    with op.batch_alter_table('dispute', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispute_payment_id'))

    op.drop_table('dispute')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_tenant_id_mode_status_id'))
        batch_op.drop_index(batch_op.f('ix_payment_tenant_id_mode_receipt_number'))
        batch_op.drop_index(batch_op.f('ix_payment_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_payment_tenant_id_mode_billing_account_id_id'))
        batch_op.drop_index(batch_op.f('ix_payment_pay_session_id'))
        batch_op.drop_index(batch_op.f('ix_payment_gateway_gateway_reference'))

    op.drop_table('payment')
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_tenant_id_mode_id'))

    op.drop_table('entry')
    with op.batch_alter_table('pay_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pay_session_tenant_id_mode_id'))

    op.drop_table('pay_session')
    op.drop_table('gateway_notification')
    op.drop_table('blocked_bank_account')
