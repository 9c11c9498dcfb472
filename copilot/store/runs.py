"""Runs: one per message sent, each a Temporal workflow of the same id. Reads for a caller are
scoped to its (tenant, user); the server's own paths (the run it just started, the worker) read
a run by its id alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.attachments import MessageExtras
from copilot.errors import Conflict, NotFound
from copilot.store.chats import get_chat
from copilot.store.models import AttachmentRow, Chat, Message, Run
from copilot.store.rows import new_id
from copilot.types import RUN_RUNNING


@dataclass
class RunStart:
    run: Run
    chat: Chat
    created: bool  # False: an idempotent resubmit returned the first run
    new_chat: bool


def new_run_id() -> str:
    """A run id (= its Temporal workflow id and its event log's key) is unique for ever: a chat
    id is the caller's and can come back after a delete, so nothing of it goes in here."""
    return new_id("run")


async def get_run(
    session: AsyncSession, *, tenant_id: str, user_id: str, run_id: str
) -> Run | None:
    """The run if this owner's (None otherwise: never reveal another owner's run)."""
    run = await session.get(Run, run_id)
    if run is None or run.tenant_id != tenant_id or run.user_id != user_id:
        return None
    return run


async def get_run_by_id(session: AsyncSession, *, run_id: str) -> Run | None:
    """Any owner's run: only for the server's own reads (a run it has just started for the
    caller, the events it serves after the caller's ownership was checked)."""
    return await session.get(Run, run_id)


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
    extras: MessageExtras | None = None,
) -> RunStart:
    """Create the run and its user message in one transaction, under the chat's row lock.

    The lock serialises concurrent starts on one chat; the partial unique index on active runs
    is the last line of defence across API replicas.
    """
    new_chat = False
    chat: Chat | None = None
    owner = {"tenant_id": tenant_id, "user_id": user_id}
    if chat_id is not None:
        chat = await get_chat(session, **owner, chat_id=chat_id, lock=True)
        if chat is None and not create_unknown_chat:
            raise NotFound("chat not found", code="chat_not_found")
    if chat is None:
        fresh = Chat(
            **owner, id=chat_id or str(uuid.uuid4()), uid=uuid.uuid4().hex, model=model, run_count=0
        )
        try:
            async with session.begin_nested():
                session.add(fresh)
            chat, new_chat = fresh, True
        except IntegrityError:
            # The owner's concurrent request created it first (and committed): go on with that
            # one, so its messageId still dedupes and its active run still counts.
            chat = await get_chat(session, **owner, chat_id=fresh.id, lock=True)
            if chat is None:
                raise Conflict(
                    "the chat is being created by another request; retry", code="run_active"
                ) from None
    if client_message_id is not None and not new_chat:
        existing = await session.scalar(
            runs_of(chat).where(Run.client_message_id == client_message_id)
        )
        if existing is not None:
            return RunStart(run=existing, chat=chat, created=False, new_chat=False)
    active = await session.scalar(runs_of(chat).where(Run.active))
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
        id=new_run_id(),
        chat_id=chat.id,
        **owner,
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
    try:
        await session.flush()  # the run first: the database holds one active run per chat
    except IntegrityError as exc:
        if "uq_runs_one_active_per_chat" not in str(exc.orig):
            raise  # not the race this answers for: a bug, never passed off as a 409
        raise Conflict("this chat already has an active run", code="run_active") from None
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message}]
    for new in extras.attachments if extras is not None else []:
        row = AttachmentRow(
            id=new_id("att"),
            run_id=run.id,
            **owner,
            kind=new.kind,
            media_type=new.media_type,
            name=new.name,
            size=len(new.data),
            data=new.data,
        )
        session.add(row)
        blocks.append(
            {
                "type": "attachment",
                "id": row.id,
                "kind": row.kind,
                "media_type": row.media_type,
                "name": row.name,
                "bytes": row.size,
            }
        )
    if extras is not None:
        blocks[1:1] = extras.blocks
    session.add(
        Message(
            id=new_id("msg"),
            **owner,
            chat_id=chat.id,
            run_id=run.id,
            role="user",
            content=message,
            blocks=blocks,
            tool_calls=[],
            status="completed",
            client_message_id=client_message_id,
        )
    )
    await session.flush()
    return RunStart(run=run, chat=chat, created=True, new_chat=new_chat)


def runs_of(chat: Chat) -> Select[Run]:
    return select(Run).where(
        Run.tenant_id == chat.tenant_id, Run.user_id == chat.user_id, Run.chat_id == chat.id
    )


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


async def active_run_id(session: AsyncSession, *, chat: Chat) -> str | None:
    run = await session.scalar(runs_of(chat).where(Run.active))
    return run.id if run is not None else None


async def last_run(session: AsyncSession, *, chat: Chat) -> Run | None:
    run: Run | None = await session.scalar(runs_of(chat).order_by(Run.seq_no.desc()).limit(1))
    return run


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
