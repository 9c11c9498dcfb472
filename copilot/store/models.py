"""Tables. Every owned row carries (tenant_id, user_id); queries always filter on both.

A chat is keyed by its owner and its id, (tenant_id, user_id, id): the id is the caller's (Sim
mints its own), so it means something only inside its owner. Runs and messages reference that
whole key. Run ids are the server's own and unique for ever (they are Temporal workflow ids and
event-log keys, which outlive a deleted chat).

The schema is changed only through Alembic migrations (``copilot/store/migrations``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from copilot.types import ToolCall


class Base(DeclarativeBase):
    pass


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = _now()


_CHAT_KEY = ("tenant_id", "user_id", "chat_id")
_CHAT_PK = ("chats.tenant_id", "chats.user_id", "chats.id")


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_owner_updated", "tenant_id", "user_id", "updated_at"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # This incarnation of the chat, server-made: a chat deleted and created again under the same
    # id gets a new one (an upstream backend's chat id is derived from it).
    uid: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    title: Mapped[str | None] = mapped_column(String(300))
    model: Mapped[str | None] = mapped_column(String(200))
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    # An upstream backend's responseId, sent back on the next message (Sim's conversationId).
    conversation_id: Mapped[str | None] = mapped_column(String(200))
    run_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        ForeignKeyConstraint(_CHAT_KEY, _CHAT_PK, name="fk_runs_chat", ondelete="CASCADE"),
        UniqueConstraint(*_CHAT_KEY, "client_message_id", name="uq_runs_chat_message"),
        # At most one active run per chat, enforced by the database so API replicas racing on
        # one chat cannot both start a run.
        Index(
            "uq_runs_one_active_per_chat",
            *_CHAT_KEY,
            unique=True,
            postgresql_where=text("active"),
        ),
        Index("ix_runs_owner_created", "tenant_id", "user_id", "created_at"),
    )

    # Equal to the Temporal workflow id: run_<uuid>, never derived from caller ids.
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    seq_no: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    client_message_id: Mapped[str | None] = mapped_column(String(128))
    response_id: Mapped[str] = mapped_column(String(200), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    interactive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The seq of the run's final ``done`` event, once it has finished.
    last_seq: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        ForeignKeyConstraint(_CHAT_KEY, _CHAT_PK, name="fk_messages_chat", ondelete="CASCADE"),
        UniqueConstraint("run_id", "role", name="uq_messages_run_role"),
        Index("ix_messages_chat_created", *_CHAT_KEY, "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    chat_id: Mapped[str] = mapped_column(String(128), nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Provider-neutral content blocks (text, thinking, tool_use, tool_result) of the turns.
    blocks: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    tool_calls: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="completed")
    client_message_id: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """Issued keys (service / user). Only a hash of the key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    last4: Mapped[str] = mapped_column(String(4), nullable=False)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderKey(Base):
    """A user's own provider key, AES-256-GCM encrypted (see ``copilot.crypto``)."""

    __tablename__ = "provider_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "provider", name="uq_provider_keys_owner"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    base_url: Mapped[str | None] = mapped_column(String(500))
    last4: Mapped[str] = mapped_column(String(4), nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ToolCallRow(Base):
    """Where a tool call lives, so confirm and mark-complete find its run and owner.

    The workflow stays the source of truth for the call's state.
    """

    __tablename__ = "tool_calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    chat_id: Mapped[str] = mapped_column(String(128), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    executor: Mapped[str] = mapped_column(String(16), nullable=False)
    host_executed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _now()

    @staticmethod
    def values_for(
        call: ToolCall,
        *,
        run_id: str,
        chat_id: str,
        tenant_id: str,
        user_id: str,
        executor: str,
        host_executed: bool,
    ) -> dict[str, Any]:
        """The row's columns for a call (an insert's values: rows are written in bulk)."""
        return {
            "id": call.id,
            "run_id": run_id,
            "chat_id": chat_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "name": call.name,
            "executor": executor,
            "host_executed": host_executed,
        }

    def to_call(self) -> ToolCall:
        """The call this row locates. Its arguments are not stored (the workflow holds them)."""
        return ToolCall(id=self.id, name=self.name)


class ToolCatalog(Base):
    """A large tool set, stored once under the hash of its content (``copilot.tools.catalog``)."""

    __tablename__ = "tool_catalogs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tool_count: Mapped[int] = mapped_column(Integer, nullable=False)
    tools: Mapped[list[Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _now()


class ToolResult(Base):
    """A tool result too large to pass around: the model and the events get a bounded view."""

    __tablename__ = "tool_results"

    tool_call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class AttachmentRow(Base):
    """A file attached to a user message (``copilot.attachments``): bytes by reference."""

    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    name: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column("bytes", Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _now()


class RunCredential(Base):
    """A provider config sent with one request (Sim's ``provider`` object): its key AES-256-GCM
    encrypted, bound to the run, deleted when the run ends."""

    __tablename__ = "run_credentials"

    run_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    flavor: Mapped[str] = mapped_column(String(32), nullable=False)
    endpoint: Mapped[str | None] = mapped_column(String(500))
    api_version: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _now()
