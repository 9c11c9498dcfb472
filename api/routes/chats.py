"""The user's chats and their messages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ActingUserDep, OwnedChat, PrincipalDep, ReadLimit, SessionDep, StateDep
from copilot.errors import Conflict
from copilot.store import chats, messages, runs
from copilot.store.models import Chat, Message

router = APIRouter(tags=["native"], dependencies=[ReadLimit])


def _chat(chat: Chat) -> dict[str, Any]:
    return {
        "chatId": chat.id,
        "title": chat.title,
        "model": chat.model,
        "createdAt": chat.created_at.isoformat(),
        "updatedAt": chat.updated_at.isoformat(),
    }


def _message(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "role": msg.role,
        "content": msg.content,
        "blocks": msg.blocks,
        "toolCalls": msg.tool_calls,
        "status": msg.status,
        "runId": msg.run_id,
        "messageId": msg.client_message_id,
        "createdAt": msg.created_at.isoformat(),
    }


@router.get("/api/copilot/chats", summary="The user's chats, newest first")
async def list_chats(
    session: SessionDep, principal: PrincipalDep, acting: ActingUserDep
) -> dict[str, Any]:
    owned = await chats.list_chats(session, tenant_id=principal.tenant_id, user_id=acting)
    return {"success": True, "chats": [_chat(c) for c in owned]}


@router.delete("/api/copilot/chats/{chat_id}", summary="Delete a chat and its history")
async def delete_chat(chat: OwnedChat, session: SessionDep, state: StateDep) -> dict[str, Any]:
    active = await runs.active_run_id(session, chat=chat)
    if active is not None:
        raise Conflict(
            "the chat has an active run; abort it first", code="run_active", extra={"runId": active}
        )
    chat_id = chat.id
    run_ids = await chats.delete_chat(session, chat=chat)
    # Before the commit: if Redis cannot take it, the chat stays and the caller may retry;
    # nothing of a deleted chat is left to be streamed (its logs live up to a day otherwise).
    await state.event_log.delete(run_ids)
    return {"success": True, "chatId": chat_id}


@router.get("/api/copilot/chats/{chat_id}", summary="A chat with its messages")
async def get_chat(chat: OwnedChat, session: SessionDep) -> dict[str, Any]:
    history = await messages.chat_messages(session, chat=chat)
    return {
        "success": True,
        **_chat(chat),
        "messages": [_message(m) for m in history],
        "activeRunId": await runs.active_run_id(session, chat=chat),
    }
