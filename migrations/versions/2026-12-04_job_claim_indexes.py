"""job claim indexes: due jobs in claim order, of any kind and of one kind

claim() now walks an index in the order it hands jobs out and stops at its limit; with
(status, run_after) alone it read and sorted every due job for each claim.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:50:00
"""

from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_job_status_run_after', table_name='job')
    op.create_index('ix_job_status_run_after_id', 'job', ['status', 'run_after', 'id'],
                    unique=False)
    op.create_index('ix_job_status_kind_run_after_id', 'job',
                    ['status', 'kind', 'run_after', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_status_kind_run_after_id', table_name='job')
    op.drop_index('ix_job_status_run_after_id', table_name='job')
    op.create_index('ix_job_status_run_after', 'job', ['status', 'run_after'], unique=False)
