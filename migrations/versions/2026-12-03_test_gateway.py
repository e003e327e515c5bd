"""the test gateway's own records: charges, scheduled events and refunds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('test_gateway_charge',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('charge_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=4), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('decline_code', sa.String(length=40), nullable=True),
    sa.Column('message', sa.String(length=200), nullable=False),
    sa.Column('settle_date', sa.Date(), nullable=True),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('token', sa.String(length=40), nullable=True),
    sa.Column('brand', sa.String(length=20), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('exp_month', sa.Integer(), nullable=True),
    sa.Column('exp_year', sa.Integer(), nullable=True),
    sa.Column('routing_number', sa.String(length=9), nullable=True),
    sa.Column('account_type', sa.String(length=8), nullable=True),
    sa.Column('holder_name', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('behaviour', sa.String(length=20), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_gateway_charge')),
    sa.UniqueConstraint('tenant_id', 'mode', 'idempotency_key', name=op.f('uq_test_gateway_charge_tenant_id_mode_idempotency_key'))
    )
    with op.batch_alter_table('test_gateway_charge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_gateway_charge_tenant_id_mode_token'), ['tenant_id', 'mode', 'token'], unique=False)

    op.create_table('test_gateway_event',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('charge_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('event_date', sa.Date(), nullable=False),
    sa.Column('return_code', sa.String(length=3), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('fee_minor', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['charge_id'], ['test_gateway_charge.id'], name=op.f('fk_test_gateway_event_charge_id_test_gateway_charge')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_gateway_event'))
    )
    with op.batch_alter_table('test_gateway_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_gateway_event_charge_id'), ['charge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_test_gateway_event_tenant_id_mode_status_event_date'), ['tenant_id', 'mode', 'status', 'event_date'], unique=False)

    op.create_table('test_gateway_refund',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('charge_id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('message', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['charge_id'], ['test_gateway_charge.id'], name=op.f('fk_test_gateway_refund_charge_id_test_gateway_charge')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_gateway_refund')),
    sa.UniqueConstraint('tenant_id', 'mode', 'idempotency_key', name=op.f('uq_test_gateway_refund_tenant_id_mode_idempotency_key'))
    )
    with op.batch_alter_table('test_gateway_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_gateway_refund_charge_id'), ['charge_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('test_gateway_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_test_gateway_refund_charge_id'))

    op.drop_table('test_gateway_refund')
    with op.batch_alter_table('test_gateway_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_test_gateway_event_tenant_id_mode_status_event_date'))
        batch_op.drop_index(batch_op.f('ix_test_gateway_event_charge_id'))

    op.drop_table('test_gateway_event')
    with op.batch_alter_table('test_gateway_charge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_test_gateway_charge_tenant_id_mode_token'))

    op.drop_table('test_gateway_charge')
