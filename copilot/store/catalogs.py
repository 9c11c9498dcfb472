"""Tool catalogs and large tool results (see ``copilot.tools.catalog``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.store.models import ToolCatalog, ToolResult
from copilot.tools.catalog import catalog_id
from copilot.types import ToolSpec


async def save_catalog(session: AsyncSession, *, tools: list[ToolSpec]) -> str:
    """Store the catalog unless it is there already (the usual case: a megabyte is sent to
    PostgreSQL once, not with every message)."""
    key = catalog_id(tools)
    if await session.scalar(select(ToolCatalog.id).where(ToolCatalog.id == key)) is None:
        await session.execute(
            insert(ToolCatalog)
            .values(id=key, tool_count=len(tools), tools=[t.to_json() for t in tools])
            .on_conflict_do_nothing()
        )
    return key


async def load_catalog(session: AsyncSession, *, key: str) -> list[ToolSpec]:
    tools = await session.scalar(select(ToolCatalog.tools).where(ToolCatalog.id == key))
    return [
        ToolSpec(str(t["name"]), str(t.get("description", "")), dict(t["input_schema"]))
        for t in tools or []
    ]


async def save_result(
    session: AsyncSession,
    *,
    tool_call_id: str,
    run_id: str,
    tenant_id: str,
    user_id: str,
    size: int,
    data: Any,
) -> None:
    """Idempotent: a repeated report of the same call keeps the first result."""
    await session.execute(
        insert(ToolResult)
        .values(
            tool_call_id=tool_call_id,
            run_id=run_id,
            tenant_id=tenant_id,
            user_id=user_id,
            bytes=size,
            data=data,
        )
        .on_conflict_do_nothing()
    )


async def get_result(
    session: AsyncSession, *, tenant_id: str, user_id: str, tool_call_id: str
) -> ToolResult | None:
    row = await session.get(ToolResult, tool_call_id)
    if row is None or row.tenant_id != tenant_id or row.user_id != user_id:
        return None
    return row


class CatalogCache:
    """Catalogs a worker has read, by key. A key is its content's hash, so an entry never goes
    stale; the few a worker serves at once (one per host app version) stay in memory."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], size: int = 8) -> None:
        self._sessions = sessions
        self._size = size
        self._entries: OrderedDict[str, dict[str, ToolSpec]] = OrderedDict()

    async def get(self, key: str) -> dict[str, ToolSpec]:
        tools = self._entries.get(key)
        if tools is None:
            async with self._sessions() as session:
                loaded = await load_catalog(session, key=key)
            tools = {t.name: t for t in loaded}
            self._entries[key] = tools
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return tools
