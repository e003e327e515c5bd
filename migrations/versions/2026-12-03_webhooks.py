"""webhook endpoints, events, webhook and postback deliveries, postback secrets

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=80), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('about_type', sa.String(length=40), nullable=True),
    sa.Column('about_id', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_tenant_id_mode_about_type_about_id'), ['tenant_id', 'mode', 'about_type', 'about_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('postback_secret',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('previous_secret', sa.String(length=100), nullable=True),
    sa.Column('previous_secret_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postback_secret')),
    sa.UniqueConstraint('tenant_id', 'mode', name=op.f('uq_postback_secret_tenant_id_mode'))
    )
    op.create_table('webhook_endpoint',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('enabled_events', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('disabled_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('previous_secret', sa.String(length=100), nullable=True),
    sa.Column('previous_secret_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoint'))
    )
    with op.batch_alter_table('webhook_endpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoint_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)

    op.create_table('webhook_delivery',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('endpoint_id', sa.String(length=40), nullable=True),
    sa.Column('event_id', sa.String(length=40), nullable=True),
    sa.Column('event_type', sa.String(length=80), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('msg_id', sa.String(length=40), nullable=False),
    sa.Column('allow_private', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('about_type', sa.String(length=40), nullable=True),
    sa.Column('about_id', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoint.id'], name=op.f('fk_webhook_delivery_endpoint_id_webhook_endpoint')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_webhook_delivery_event_id_event')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery'))
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_about_type_about_id_id'), ['tenant_id', 'mode', 'about_type', 'about_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_endpoint_id_id'), ['tenant_id', 'mode', 'endpoint_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_id'), ['tenant_id', 'mode', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_endpoint_id_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_tenant_id_mode_about_type_about_id_id'))

    op.drop_table('webhook_delivery')
    with op.batch_alter_table('webhook_endpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_endpoint_tenant_id_mode_id'))

    op.drop_table('webhook_endpoint')
    op.drop_table('postback_secret')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_tenant_id_mode_id'))
        batch_op.drop_index(batch_op.f('ix_event_tenant_id_mode_about_type_about_id'))

    op.drop_table('event')
