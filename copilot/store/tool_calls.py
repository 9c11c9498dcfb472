"""Tool calls: which run a call belongs to, and who may decide or complete it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.store.models import ToolCallRow


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


async def record_tool_calls(session: AsyncSession, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the calls (``ToolCallRow`` columns) that are not there yet: a retried activity
    records each call once, keeping the first row."""
    if rows:
        await session.execute(insert(ToolCallRow).values(list(rows)).on_conflict_do_nothing())
