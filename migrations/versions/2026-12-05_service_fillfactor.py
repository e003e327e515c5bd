"""service pages half full: a bill run's update of every service stays on its page

A bill run moves each service's billed_through. An updated row's new version goes on the
same page when there is room (a heap-only update), and then none of the table's indexes
changes; on a full page it goes elsewhere and every index gains an entry. With the
pages filled only half, a run of 20,000 accounts (60,000 services) spent 0.45 s of
PostgreSQL's time on those updates instead of 2.65 s. The table takes twice the space;
one whose every row is rewritten each cycle should grow toward that size anyway (by
reasoning, not measured). New pages only: existing rows move as they are updated (or at VACUUM FULL).
PostgreSQL only; SQLite has no such setting.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 01:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE service SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE service RESET (fillfactor)")
