"""Queries. Repositories flush; the caller's boundary (request, activity) commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.attachments import MessageExtras
from copilot.errors import Conflict, NotFound
from copilot.store.models import AttachmentRow, Chat, Message, Run, ToolCallRow
from copilot.types import RUN_RUNNING


def without_nul(value: Any) -> Any:
    """``value`` with every U+0000 removed from its strings (keys included)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


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


async def get_chat(
    session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str, lock: bool = False
) -> Chat | None:
    return await session.get(Chat, (tenant_id, user_id, chat_id), with_for_update=lock)


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
            _runs_of(chat).where(Run.client_message_id == client_message_id)
        )
        if existing is not None:
            return RunStart(run=existing, chat=chat, created=False, new_chat=False)
    active = await session.scalar(_runs_of(chat).where(Run.active))
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


def _runs_of(chat: Chat) -> Any:
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


async def conversation_rows(
    session: AsyncSession, *, tenant_id: str, user_id: str, chat_id: str, run_id: str
) -> list[Message]:
    """Messages the model sees for ``run_id``: every earlier message of the chat, then its own."""
    rows = (
        await session.scalars(
            select(Message)
            .join(Run, Run.id == Message.run_id)
            .where(_message_owner(tenant_id, user_id, chat_id))
            .where((Run.id == run_id) | (Run.seq_no < _run_seq_subquery(run_id)))
            .order_by(Run.seq_no, Message.created_at, Message.role.desc())
        )
    ).all()
    return list(rows)


def _message_owner(tenant_id: str, user_id: str, chat_id: str) -> Any:
    return and_(
        Message.tenant_id == tenant_id, Message.user_id == user_id, Message.chat_id == chat_id
    )


def _run_seq_subquery(run_id: str) -> Any:
    return select(Run.seq_no).where(Run.id == run_id).scalar_subquery()


_ANSWER_FIELDS = ("content", "blocks", "tool_calls", "status", "input_tokens", "output_tokens")


async def save_assistant_message(
    session: AsyncSession,
    *,
    run_id: str,
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
) -> str | None:
    """Idempotent: a retried write updates the one assistant message of the run.

    The run's row says whose chat it is; a run whose chat was deleted meanwhile saves nothing
    (None)."""
    run = await session.get(Run, run_id)
    if run is None:
        return None
    tenant_id, user_id, chat_id = run.tenant_id, run.user_id, run.chat_id
    # What a model or a tool wrote may hold U+0000, which PostgreSQL cannot store: dropped
    # here rather than failing the run's last write for ever.
    content, blocks, tool_calls = without_nul(content), without_nul(blocks), without_nul(tool_calls)
    values = {
        "id": new_id("msg"),
        "tenant_id": tenant_id,
        "user_id": user_id,
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
        set_={k: stmt.excluded[k] for k in values if k in _ANSWER_FIELDS},
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
    await session.execute(
        update(Chat)
        .where(Chat.tenant_id == tenant_id, Chat.user_id == user_id, Chat.id == chat_id)
        .values(**chat_values)
    )
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


async def chat_messages(session: AsyncSession, *, chat: Chat) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .join(Run, Run.id == Message.run_id)
        .where(_message_owner(chat.tenant_id, chat.user_id, chat.id))
        .order_by(Run.seq_no, Message.role.desc())
    )
    return list(rows.all())


async def active_run_id(session: AsyncSession, *, chat: Chat) -> str | None:
    run = await session.scalar(_runs_of(chat).where(Run.active))
    return run.id if run is not None else None


async def last_run(session: AsyncSession, *, chat: Chat) -> Run | None:
    run: Run | None = await session.scalar(_runs_of(chat).order_by(Run.seq_no.desc()).limit(1))
    return run


async def delete_chat(session: AsyncSession, *, chat: Chat) -> list[str]:
    """Delete the chat with its runs, messages and tool calls; the ids of the runs it had (their
    event logs are the caller's to remove)."""
    run_ids = list(await session.scalars(_runs_of(chat).with_only_columns(Run.id)))
    await session.delete(chat)
    await session.flush()
    return run_ids


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


async def attachment_data(
    session: AsyncSession, *, run_ids: list[str], ids: list[str]
) -> dict[str, bytes]:
    """The bytes of these attachments (of these runs: a message's refs stay inside its chat)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(AttachmentRow.id, AttachmentRow.data).where(
            AttachmentRow.id.in_(ids), AttachmentRow.run_id.in_(run_ids)
        )
    )
    return {row.id: row.data for row in rows}


async def set_user_context(
    session: AsyncSession, *, run_id: str, blocks: list[dict[str, Any]], kind: str
) -> None:
    """Put context blocks of ``kind`` on the run's user message (replacing earlier ones of that
    kind: idempotent when the step is retried)."""
    message = await session.scalar(
        select(Message).where(Message.run_id == run_id, Message.role == "user")
    )
    if message is None:
        return
    kept = [b for b in message.blocks if not (b.get("type") == "context" and b.get("kind") == kind)]
    message.blocks = [*kept[:1], *blocks, *kept[1:]]
