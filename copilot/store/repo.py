"""Queries. Repositories flush; the caller's boundary (request, activity) commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.errors import Conflict, NotFound
from copilot.store.models import Chat, Message, Run, ToolCallRow
from copilot.types import RUN_RUNNING


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class RunStart:
    run: Run
    chat: Chat
    created: bool  # False: an idempotent resubmit returned the first run
    new_chat: bool


async def get_chat(
    session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str
) -> Chat | None:
    chat = await session.get(Chat, chat_id)
    if chat is None or chat.tenant_id != tenant_id or chat.user_id != user_id:
        return None
    return chat


async def get_run(
    session: AsyncSession, *, tenant_id: str, user_id: str, run_id: str
) -> Run | None:
    run = await session.get(Run, run_id)
    if run is None or run.tenant_id != tenant_id or run.user_id != user_id:
        return None
    return run


async def start_run(
    session: AsyncSession,
    *,
    tenant_id: str,
    user_id: str,
    chat_id: str | None,
    create_unknown_chat: bool,
    client_message_id: str | None,
    message: str,
    model: str,
    provider: str,
    mode: str,
    response_id: str | None,
    interactive: bool,
) -> RunStart:
    """Create the run and its user message in one transaction, under the chat's row lock.

    The lock serialises concurrent starts on one chat; the partial unique index on active runs
    is the last line of defence across API replicas.
    """
    new_chat = False
    chat: Chat | None = None
    if chat_id is not None:
        chat = await session.get(Chat, chat_id, with_for_update=True)
        if chat is not None and (chat.tenant_id != tenant_id or chat.user_id != user_id):
            raise NotFound("chat not found", code="chat_not_found")
        if chat is None and not create_unknown_chat:
            raise NotFound("chat not found", code="chat_not_found")
    if chat is None:
        chat = Chat(
            id=chat_id or str(uuid.uuid4()),
            tenant_id=tenant_id,
            user_id=user_id,
            model=model,
            run_count=0,
        )
        session.add(chat)
        try:
            await session.flush()
        except IntegrityError:
            # Another request created it first (or it belongs to someone else).
            raise NotFound("chat not found", code="chat_not_found") from None
        new_chat = True
    if client_message_id is not None and not new_chat:
        existing = await session.scalar(
            select(Run).where(Run.chat_id == chat.id, Run.client_message_id == client_message_id)
        )
        if existing is not None:
            return RunStart(run=existing, chat=chat, created=False, new_chat=False)
    active = await session.scalar(select(Run).where(Run.chat_id == chat.id, Run.active))
    if active is not None:
        raise Conflict(
            "this chat already has an active run; wait for it, abort it, or send "
            'onActiveRun: "interrupt"',
            code="run_active",
            extra={"runId": active.id},
        )
    chat.run_count += 1
    chat.model = model
    chat.updated_at = datetime.now(UTC)
    run = Run(
        id=f"chat-{chat.id}-{chat.run_count}",
        chat_id=chat.id,
        tenant_id=tenant_id,
        user_id=user_id,
        seq_no=chat.run_count,
        status=RUN_RUNNING,
        active=True,
        client_message_id=client_message_id,
        response_id=response_id or str(uuid.uuid4()),
        model=model,
        provider=provider,
        mode=mode,
        interactive=interactive,
    )
    session.add(run)
    session.add(
        Message(
            id=new_id("msg"),
            chat_id=chat.id,
            run_id=run.id,
            role="user",
            content=message,
            blocks=[{"type": "text", "text": message}],
            tool_calls=[],
            status="completed",
            client_message_id=client_message_id,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("this chat already has an active run", code="run_active") from None
    return RunStart(run=run, chat=chat, created=True, new_chat=new_chat)


async def fail_run(session: AsyncSession, *, run_id: str, error: str, code: str) -> None:
    await session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            status="failed",
            active=False,
            error=error,
            error_code=code,
            finished_at=func.now(),
        )
    )


async def conversation_rows(session: AsyncSession, *, chat_id: str, run_id: str) -> list[Message]:
    """Messages the model sees for ``run_id``: every earlier message of the chat, then its own."""
    rows = (
        await session.scalars(
            select(Message)
            .join(Run, Run.id == Message.run_id)
            .where(Message.chat_id == chat_id)
            .where((Run.id == run_id) | (Run.seq_no < _run_seq_subquery(run_id)))
            .order_by(Run.seq_no, Message.created_at, Message.role.desc())
        )
    ).all()
    return list(rows)


def _run_seq_subquery(run_id: str) -> Any:
    return select(Run.seq_no).where(Run.id == run_id).scalar_subquery()


async def save_assistant_message(
    session: AsyncSession,
    *,
    run_id: str,
    chat_id: str,
    content: str,
    status: str,
    blocks: list[Any],
    tool_calls: list[Any],
    input_tokens: int,
    output_tokens: int,
    error: str | None,
    error_code: str | None,
    title: str | None = None,
    last_seq: int | None = None,
) -> str:
    """Idempotent: a retried write updates the one assistant message of the run."""
    message_id = new_id("msg")
    values = {
        "id": message_id,
        "chat_id": chat_id,
        "run_id": run_id,
        "role": "assistant",
        "content": content,
        "blocks": blocks,
        "tool_calls": tool_calls,
        "status": status,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    stmt = insert(Message).values(**values)
    upsert = stmt.on_conflict_do_update(
        constraint="uq_messages_run_role",
        set_={k: stmt.excluded[k] for k in values if k not in ("id", "chat_id", "run_id", "role")},
    ).returning(Message.id)
    saved_id = await session.scalar(upsert)
    await session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            status=status,
            active=False,
            error=error,
            error_code=error_code,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            last_seq=last_seq,
            finished_at=func.now(),
        )
    )
    chat_values: dict[str, Any] = {"updated_at": func.now()}
    if title:
        chat_values["title"] = title
    await session.execute(update(Chat).where(Chat.id == chat_id).values(**chat_values))
    return str(saved_id)


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


async def chat_messages(session: AsyncSession, *, chat_id: str) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .join(Run, Run.id == Message.run_id)
        .where(Message.chat_id == chat_id)
        .order_by(Run.seq_no, Message.role.desc())
    )
    return list(rows.all())


async def active_run_id(session: AsyncSession, *, chat_id: str) -> str | None:
    return await session.scalar(select(Run.id).where(Run.chat_id == chat_id, Run.active))


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "runId": run.id,
        "chatId": run.chat_id,
        "status": run.status,
        "model": run.model,
        "provider": run.provider,
        "createdAt": run.created_at.isoformat() if run.created_at else None,
        "finishedAt": run.finished_at.isoformat() if run.finished_at else None,
        "usage": {"inputTokens": run.input_tokens, "outputTokens": run.output_tokens},
        "error": run.error,
    }


async def get_tool_call(
    session: AsyncSession, *, tenant_id: str, tool_call_id: str, user_id: str | None = None
) -> ToolCallRow | None:
    """A tool call owned by the tenant (and the user, when given)."""
    row = await session.get(ToolCallRow, tool_call_id)
    if row is None or row.tenant_id != tenant_id:
        return None
    if user_id is not None and row.user_id != user_id:
        return None
    return row


async def list_runs(
    session: AsyncSession,
    *,
    tenant_id: str,
    user_id: str,
    chat_id: str | None,
    status: str | None,
    limit: int,
) -> list[Run]:
    query = select(Run).where(Run.tenant_id == tenant_id, Run.user_id == user_id)
    if chat_id:
        query = query.where(Run.chat_id == chat_id)
    if status:
        query = query.where(Run.status == status)
    rows = await session.scalars(query.order_by(Run.created_at.desc()).limit(limit))
    return list(rows.all())


async def run_message(session: AsyncSession, *, run_id: str) -> Message | None:
    """The assistant message of a run, once saved."""
    return await session.scalar(
        select(Message).where(Message.run_id == run_id, Message.role == "assistant")
    )
