"""PostgreSQL in a schema of its own per test: repositories run against the real server, and
tests never see each other's rows."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from copilot.store.engine import async_url
from copilot.store.models import Base


@contextlib.asynccontextmanager
async def schema_sessions(
    database_url: str, prefix: str, tables: list[Table] | None = None
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a fresh schema holding ``tables`` (every model's by default), dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(async_url(database_url))
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_async_engine(
        async_url(database_url), connect_args={"server_settings": {"search_path": schema}}
    )
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: Base.metadata.create_all(c, tables))
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()
