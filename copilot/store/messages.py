"""Messages: a run's user message and assistant answer, and the chat history they make."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.store.models import AttachmentRow, Chat, Message, Run
from copilot.store.rows import new_id, without_nul


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


async def chat_messages(session: AsyncSession, *, chat: Chat) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .join(Run, Run.id == Message.run_id)
        .where(_message_owner(chat.tenant_id, chat.user_id, chat.id))
        .order_by(Run.seq_no, Message.role.desc())
    )
    return list(rows.all())


async def run_message(session: AsyncSession, *, run_id: str) -> Message | None:
    """The assistant message of a run, once saved."""
    return await session.scalar(
        select(Message).where(Message.run_id == run_id, Message.role == "assistant")
    )


async def user_message(session: AsyncSession, *, run_id: str) -> Message | None:
    """The message a run answers (None: its chat was deleted meanwhile)."""
    return await session.scalar(
        select(Message).where(Message.run_id == run_id, Message.role == "user")
    )


async def set_user_context(
    session: AsyncSession, *, run_id: str, blocks: list[dict[str, Any]], kind: str
) -> None:
    """Put context blocks of ``kind`` on the run's user message (replacing earlier ones of that
    kind: idempotent when the step is retried)."""
    message = await user_message(session, run_id=run_id)
    if message is None:
        return
    kept = [b for b in message.blocks if not (b.get("type") == "context" and b.get("kind") == kind)]
    message.blocks = [*kept[:1], *blocks, *kept[1:]]


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
