"""Server-wide counts for operators (``/api/stats``, ``/metrics``): across every tenant."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.store.models import Chat, Message, Run


@dataclass(frozen=True)
class UsageStats:
    messages: int
    users: int  # distinct (tenant, user) owners of a chat
    runs: int
    active_runs: int
    chats: int
    runs_by_status: dict[str, int]


async def _count(session: AsyncSession, query: Select[int]) -> int:
    return int(await session.scalar(query) or 0)


async def usage_stats(session: AsyncSession) -> UsageStats:
    owners = select(Chat.tenant_id, Chat.user_id).distinct().subquery()
    return UsageStats(
        messages=await _count(session, select(func.count()).select_from(Message)),
        users=await _count(session, select(func.count()).select_from(owners)),
        runs=await _count(session, select(func.count()).select_from(Run)),
        active_runs=await _count(session, select(func.count()).select_from(Run).where(Run.active)),
        chats=await _count(session, select(func.count()).select_from(Chat)),
        runs_by_status=await runs_by_status(session),
    )


async def runs_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Run.status, func.count()).group_by(Run.status))
    return {str(status): int(count) for status, count in rows.all()}


async def tool_calls_by_status(session: AsyncSession) -> dict[str, int]:
    """Counted from the calls saved with the assistant messages: one per call, whoever ran it."""
    rows = await session.execute(
        text(
            "SELECT c->>'status', count(*) FROM messages, jsonb_array_elements(tool_calls) c"
            " WHERE role = 'assistant' GROUP BY 1"
        )
    )
    return {str(status): int(count) for status, count in rows.all()}
