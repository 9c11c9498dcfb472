"""api_keys.last_used_at: when an issued key last authenticated (Sim lists it as lastUsed)

Written at most once a minute per key (``copilot.store.apikeys.find_key``), so authenticating
stays a read on the hot path.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
