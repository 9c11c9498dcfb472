"""Repositories against PostgreSQL, each test in a schema of its own (exact counts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.store import chats, messages, repo, runs, stats, tool_calls
from tests.conftest import Services
from tests.pg import schema_sessions

OWNER = {"tenant_id": "acme", "user_id": "alice"}


@pytest.fixture
async def sessions(services: Services) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with schema_sessions(services.database_url, "store") as made:
        yield made


async def _start(session: AsyncSession, *, chat_id: str, message: str, **owner: str) -> runs.Run:
    started = await runs.start_run(
        session,
        **(owner or OWNER),
        chat_id=chat_id,
        create_unknown_chat=True,
        client_message_id=None,
        message=message,
        model="gpt-4o-mini",
        provider="openai",
        mode="ask",
        response_id=None,
        interactive=True,
    )
    return started.run


async def _answer(session: AsyncSession, run_id: str, calls: list[dict[str, Any]]) -> None:
    await messages.save_assistant_message(
        session,
        run_id=run_id,
        content="done",
        status="completed",
        blocks=[],
        tool_calls=calls,
        input_tokens=3,
        output_tokens=4,
        error=None,
        error_code=None,
    )


async def test_runs_are_read_by_their_owner_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        run = await _start(session, chat_id="c1", message="hello")
    async with sessions() as session:
        assert await runs.get_run(session, **OWNER, run_id=run.id) is not None
        for other in ({"tenant_id": "acme", "user_id": "bob"}, {**OWNER, "tenant_id": "globex"}):
            assert await runs.get_run(session, **other, run_id=run.id) is None
            assert await chats.get_chat(session, **other, chat_id="c1") is None
        assert await runs.get_run_by_id(session, run_id=run.id) is not None
        user = await messages.user_message(session, run_id=run.id)
        assert user is not None
        assert user.content == "hello"
        assert await messages.user_message(session, run_id="run_unknown") is None


async def test_conversation_id_and_delete(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        first = await _start(session, chat_id="c1", message="one")
        await _answer(session, first.id, [])
        second = await _start(session, chat_id="c1", message="two")
        await _answer(session, second.id, [])
        await chats.set_conversation_id(session, **OWNER, chat_id="c1", conversation_id="resp-1")
        # A chat that is not there (deleted meanwhile): nothing to update, nothing fails.
        await chats.set_conversation_id(session, **OWNER, chat_id="gone", conversation_id="x")
    async with sessions.begin() as session:
        chat = await chats.get_chat(session, **OWNER, chat_id="c1")
        assert chat is not None
        assert chat.conversation_id == "resp-1"
        last = await runs.last_run(session, chat=chat)
        assert last is not None
        assert last.id == second.id
        assert await runs.active_run_id(session, chat=chat) is None
        assert sorted(await chats.delete_chat(session, chat=chat)) == sorted([first.id, second.id])
    async with sessions() as session:
        assert await runs.get_run_by_id(session, run_id=first.id) is None
        assert await messages.user_message(session, run_id=second.id) is None


async def test_tool_calls_are_recorded_once_and_owned(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        run = await _start(session, chat_id="c1", message="go")

    def row(name: str) -> dict[str, Any]:
        return {"id": "tc_1", "run_id": run.id, "chat_id": "c1", **OWNER, "name": name,
                "executor": "server", "host_executed": False}  # fmt: skip

    async with sessions.begin() as session:
        await tool_calls.record_tool_calls(session, rows=[row("first")])
        await tool_calls.record_tool_calls(session, rows=[])
    async with sessions.begin() as session:  # a retried activity: the first row stays
        await tool_calls.record_tool_calls(session, rows=[row("retried")])
    async with sessions() as session:
        call = await tool_calls.get_tool_call(session, tenant_id="acme", tool_call_id="tc_1")
        assert call is not None
        assert call.name == "first"
        mine = await tool_calls.get_tool_call(session, **OWNER, tool_call_id="tc_1")
        assert mine == call
        assert (
            await tool_calls.get_tool_call(session, tenant_id="globex", tool_call_id="tc_1") is None
        )
        bob = await tool_calls.get_tool_call(
            session, tenant_id="acme", user_id="bob", tool_call_id="tc_1"
        )
        assert bob is None


async def test_usage_stats_count_every_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        empty = await stats.usage_stats(session)
        assert empty == stats.UsageStats(0, 0, 0, 0, 0, {})
        done = await _start(session, chat_id="c1", message="a")
        await _answer(session, done.id, [{"status": "success"}, {"status": "error"}])
        await _start(session, chat_id="c1", message="b")  # still running
        other = {"tenant_id": "globex", "user_id": "alice"}
        failed = await _start(session, chat_id="c1", message="c", **other)
        await runs.fail_run(session, run_id=failed.id, error="boom", code="unavailable")
        await _start(session, chat_id="c2", message="d", **other)
    async with sessions() as session:
        usage = await stats.usage_stats(session)
        assert usage == stats.UsageStats(
            messages=5,  # four user messages, one answer
            users=2,
            runs=4,
            active_runs=2,
            chats=3,
            runs_by_status={"completed": 1, "running": 2, "failed": 1},
        )
        assert await stats.runs_by_status(session) == usage.runs_by_status
        assert await stats.tool_calls_by_status(session) == {"success": 1, "error": 1}


def test_repo_still_names_every_repository() -> None:
    """Callers written before the split (activities, the SSE module) keep importing ``repo``."""
    assert repo.get_chat is chats.get_chat
    assert repo.start_run is runs.start_run
    assert repo.save_assistant_message is messages.save_assistant_message
    assert repo.get_tool_call is tool_calls.get_tool_call
    assert all(hasattr(repo, name) for name in repo.__all__)
