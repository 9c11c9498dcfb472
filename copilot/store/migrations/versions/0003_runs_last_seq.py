"""runs.last_seq: the seq of a finished run's done event (snapshots of expired logs)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("last_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "last_seq")
