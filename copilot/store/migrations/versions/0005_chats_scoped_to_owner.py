"""chats keyed by (tenant_id, user_id, id): a caller's chatId is scoped to its owner

A chat's id is chosen by the caller (Sim mints its own), so a global primary key let one
tenant's id block, or after a delete be taken over by, another's. The key is now the owner plus
the id; runs and messages reference it whole, so nothing can join across owners. ``uid`` is a
server-made identity of one incarnation of a chat (a chat deleted and created again under the
same id gets a new one); existing rows keep their id as uid so upstream conversations derived
from it carry on.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CHAT_KEY = ["tenant_id", "user_id", "chat_id"]
_CHAT_PK = ["tenant_id", "user_id", "id"]


def upgrade() -> None:
    op.add_column("chats", sa.Column("uid", sa.String(length=64), nullable=True))
    op.execute("UPDATE chats SET uid = id")
    op.alter_column("chats", "uid", nullable=False)
    op.create_unique_constraint("uq_chats_uid", "chats", ["uid"])

    op.add_column("messages", sa.Column("tenant_id", sa.String(length=64), nullable=True))
    op.add_column("messages", sa.Column("user_id", sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE messages AS m SET tenant_id = c.tenant_id, user_id = c.user_id "
        "FROM chats AS c WHERE c.id = m.chat_id"
    )
    op.alter_column("messages", "tenant_id", nullable=False)
    op.alter_column("messages", "user_id", nullable=False)

    op.drop_constraint("runs_chat_id_fkey", "runs", type_="foreignkey")
    op.drop_constraint("messages_chat_id_fkey", "messages", type_="foreignkey")
    op.drop_constraint("chats_pkey", "chats", type_="primary")
    op.create_primary_key("chats_pkey", "chats", _CHAT_PK)
    for table in ("runs", "messages"):
        op.create_foreign_key(
            f"fk_{table}_chat", table, "chats", _CHAT_KEY, _CHAT_PK, ondelete="CASCADE"
        )

    op.drop_constraint("uq_runs_chat_message", "runs", type_="unique")
    op.create_unique_constraint("uq_runs_chat_message", "runs", [*_CHAT_KEY, "client_message_id"])
    op.drop_index("uq_runs_one_active_per_chat", table_name="runs")
    op.create_index(
        "uq_runs_one_active_per_chat",
        "runs",
        _CHAT_KEY,
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.drop_index("ix_messages_chat_created", table_name="messages")
    op.create_index("ix_messages_chat_created", "messages", [*_CHAT_KEY, "created_at"])


def downgrade() -> None:
    raise NotImplementedError(
        "0005 cannot be undone: two owners may now hold chats with the same id"
    )
