"""Chats: the owner's conversations. Every query is scoped to (tenant, user): a chat id is the
caller's own name for it and means nothing across owners."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.store.models import Chat, Run


async def get_chat(
    session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str, lock: bool = False
) -> Chat | None:
    return await session.get(Chat, (tenant_id, user_id, chat_id), with_for_update=lock)


async def list_chats(
    session: AsyncSession, *, tenant_id: str, user_id: str, limit: int = 50
) -> list[Chat]:
    rows = await session.scalars(
        select(Chat)
        .where(Chat.tenant_id == tenant_id, Chat.user_id == user_id)
        .order_by(Chat.updated_at.desc())
        .limit(limit)
    )
    return list(rows.all())


async def delete_chat(session: AsyncSession, *, chat: Chat) -> list[str]:
    """Delete the chat with its runs, messages and tool calls; the ids of the runs it had (their
    event logs are the caller's to remove)."""
    run_ids = list(
        await session.scalars(
            select(Run.id).where(
                Run.tenant_id == chat.tenant_id, Run.user_id == chat.user_id, Run.chat_id == chat.id
            )
        )
    )
    await session.delete(chat)
    await session.flush()
    return run_ids


async def set_conversation_id(
    session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str, conversation_id: str
) -> None:
    """Remember the upstream backend's conversation for the chat (a chat deleted meanwhile:
    nothing to update, and nothing fails)."""
    await session.execute(
        update(Chat)
        .where(Chat.tenant_id == tenant_id, Chat.user_id == user_id, Chat.id == chat_id)
        .values(conversation_id=conversation_id)
    )
