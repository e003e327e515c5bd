"""products, prices, orders, services and pending charges

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('sku_key', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('tax_category', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product'))
    )
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_tenant_id_mode_sku_key'), ['tenant_id', 'mode', 'sku_key'], unique=True)

    op.create_table('price',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('product_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amounts_minor', sa.JSON(), nullable=False),
    sa.Column('billing_timing', sa.String(length=12), nullable=True),
    sa.Column('tax_inclusive', sa.Boolean(), nullable=False),
    sa.Column('nickname', sa.String(length=100), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_price_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price'))
    )
    with op.batch_alter_table('price', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_price_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_price_tenant_id_mode_product_id_id'), ['tenant_id', 'mode', 'product_id', 'id'], unique=False)

    op.create_table('order',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('placed_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_order_billing_account_id_billing_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order'))
    )
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('pending_charge',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('product_id', sa.String(length=40), nullable=False),
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax_category', sa.String(length=40), nullable=False),
    sa.Column('tax_inclusive', sa.Boolean(), nullable=False),
    sa.Column('charge_date', sa.Date(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_pending_charge_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['order_id'], ['order.id'], name=op.f('fk_pending_charge_order_id_order')),
    sa.ForeignKeyConstraint(['price_id'], ['price.id'], name=op.f('fk_pending_charge_price_id_price')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_pending_charge_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_charge'))
    )
    with op.batch_alter_table('pending_charge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_charge_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pending_charge_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)

    op.create_table('service',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('billing_account_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('product_id', sa.String(length=40), nullable=False),
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('unit_amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('billing_timing', sa.String(length=12), nullable=False),
    sa.Column('tax_category', sa.String(length=40), nullable=False),
    sa.Column('tax_inclusive', sa.Boolean(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['billing_account_id'], ['billing_account.id'], name=op.f('fk_service_billing_account_id_billing_account')),
    sa.ForeignKeyConstraint(['order_id'], ['order.id'], name=op.f('fk_service_order_id_order')),
    sa.ForeignKeyConstraint(['price_id'], ['price.id'], name=op.f('fk_service_price_id_price')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_service_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service'))
    )
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_tenant_id_mode_billing_account_id_id'), ['tenant_id', 'mode', 'billing_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_tenant_id_mode_status_id'), ['tenant_id', 'mode', 'status', 'id'], unique=False)

    op.create_table('order_line',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('line_number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('product_id', sa.String(length=40), nullable=False),
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('unit_amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('service_id', sa.String(length=40), nullable=True),
    sa.Column('pending_charge_id', sa.String(length=40), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['order.id'], name=op.f('fk_order_line_order_id_order')),
    sa.ForeignKeyConstraint(['pending_charge_id'], ['pending_charge.id'], name=op.f('fk_order_line_pending_charge_id_pending_charge')),
    sa.ForeignKeyConstraint(['price_id'], ['price.id'], name=op.f('fk_order_line_price_id_price')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_order_line_product_id_product')),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], name=op.f('fk_order_line_service_id_service')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_line'))
    )
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_line_tenant_id_mode_order_id_line_number'), ['tenant_id', 'mode', 'order_id', 'line_number'], unique=True)

    op.create_table('service_quantity',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('service_id', sa.String(length=40), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], name=op.f('fk_service_quantity_service_id_service')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_quantity'))
    )
    with op.batch_alter_table('service_quantity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_quantity_tenant_id_mode_service_id_effective_date'), ['tenant_id', 'mode', 'service_id', 'effective_date'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('service_quantity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_quantity_tenant_id_mode_service_id_effective_date'))

    op.drop_table('service_quantity')
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_line_tenant_id_mode_order_id_line_number'))

    op.drop_table('order_line')
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_tenant_id_mode_status_id'))
        batch_op.drop_index(batch_op.f('ix_service_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_service_tenant_id_mode_billing_account_id_id'))

    op.drop_table('service')
    with op.batch_alter_table('pending_charge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_charge_tenant_id_mode_billing_account_id_id'))
        batch_op.drop_index(batch_op.f('ix_pending_charge_invoice_id'))

    op.drop_table('pending_charge')
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_order_tenant_id_mode_billing_account_id_id'))

    op.drop_table('order')
    with op.batch_alter_table('price', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_price_tenant_id_mode_product_id_id'))
        batch_op.drop_index(batch_op.f('ix_price_tenant_id_mode_id'))

    op.drop_table('price')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_tenant_id_mode_sku_key'))
        batch_op.drop_index(batch_op.f('ix_product_tenant_id_mode_id'))

    op.drop_table('product')
