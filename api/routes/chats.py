"""The user's chats and their messages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, ReadLimit, SessionDep, StateDep
from copilot.errors import Conflict, NotFound
from copilot.store import repo
from copilot.store.models import Chat, Message

router = APIRouter(tags=["native"], dependencies=[ReadLimit])

UserQuery = Annotated[str | None, Query(alias="userId")]


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
    session: SessionDep, principal: PrincipalDep, user_id: UserQuery = None
) -> dict[str, Any]:
    acting = principal.acting_user(user_id)
    chats = await repo.list_chats(session, tenant_id=principal.tenant_id, user_id=acting)
    return {"success": True, "chats": [_chat(c) for c in chats]}


@router.delete("/api/copilot/chats/{chat_id}", summary="Delete a chat and its history")
async def delete_chat(
    chat_id: str,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    user_id: UserQuery = None,
) -> dict[str, Any]:
    acting = principal.acting_user(user_id)
    chat = await repo.get_chat(
        session, tenant_id=principal.tenant_id, user_id=acting, chat_id=chat_id
    )
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    active = await repo.active_run_id(session, chat=chat)
    if active is not None:
        raise Conflict(
            "the chat has an active run; abort it first", code="run_active", extra={"runId": active}
        )
    run_ids = await repo.delete_chat(session, chat=chat)
    # Before the commit: if Redis cannot take it, the chat stays and the caller may retry;
    # nothing of a deleted chat is left to be streamed (its logs live up to a day otherwise).
    await state.event_log.delete(run_ids)
    return {"success": True, "chatId": chat_id}


@router.get("/api/copilot/chats/{chat_id}", summary="A chat with its messages")
async def get_chat(
    chat_id: str, session: SessionDep, principal: PrincipalDep, user_id: UserQuery = None
) -> dict[str, Any]:
    acting = principal.acting_user(user_id)
    chat = await repo.get_chat(
        session, tenant_id=principal.tenant_id, user_id=acting, chat_id=chat_id
    )
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    messages = await repo.chat_messages(session, chat=chat)
    return {
        "success": True,
        **_chat(chat),
        "messages": [_message(m) for m in messages],
        "activeRunId": await repo.active_run_id(session, chat=chat),
    }
