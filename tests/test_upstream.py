"""Provider ``copilot-backend``: this server as its own upstream.

Instance B is a normal server (auth on) whose model is the fake provider; instance A runs its
chats against B (``model: "backend:gpt-4o-mini"``) with a service key B issued. B sees A as a
Sim host: every tool A offers is host-executed on B, so B's stream pauses on each tool call
until A answers with B's mark-complete. Real processes, real Temporal, Postgres and Redis.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from copilot.auth import DEV_USER
from copilot.events.fold import fold_events
from copilot.providers.upstream import upstream_chat_id
from tests.conftest import Services, Stack, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.live import LiveRun
from tests.sse import collect
from tests.test_replay import HISTORIES
from worker import workflow_runner
from workflows.chat import ChatWorkflow

pytestmark = pytest.mark.slow

ADMIN_B = "admin-b-7d1f0c9a2b6e4f35"
HOST_TOOL = {
    "name": "read_sheet",
    "description": "Read a sheet of the host app",
    "inputSchema": {"type": "object", "properties": {"sheet": {"type": "string"}}},
}


@dataclass
class Pair:
    a: Stack
    b: Stack
    service_key: str  # B's service key, which A uses


@pytest.fixture(scope="module")
def pair(services: Services, fake_provider: FakeProviderServer) -> Iterator[Pair]:
    with running_stack(services, fake_provider, COPILOT_API_KEY=ADMIN_B) as b:
        resp = httpx.post(
            f"{b.api_url}/api/validate-key/generate",
            json={"tenantName": "A"},
            headers={"x-api-key": ADMIN_B},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        key = resp.json()["apiKey"]
        with running_stack(
            services,
            fake_provider,
            COPILOT_BACKEND_URL=b.api_url,
            COPILOT_BACKEND_API_KEY=key,
            CONFIRMATION_TIMEOUT="60",
        ) as a:
            yield Pair(a, b, key)


@pytest.fixture
async def client_a(pair: Pair) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pair.a.api_url, timeout=60) as c:
        yield c


def _script(tool_args: dict[str, Any]) -> list[dict[str, object]]:
    return [
        {
            "text": "Let me look. ",
            "tool_calls": [
                {"name": "echo", "arguments": {"text": "ping"}},
                {"name": "read_sheet", "arguments": tool_args},
            ],
        },
        {"chunks": ["The sheet ", "says 42."], "delay_ms": 5},
    ]


async def _b_run(pair: Pair, user: str, chat_id: str) -> dict[str, Any]:
    """B's view of the chat A created there (B runs it under A's service key). Its id there
    is derived from the chat's uid in A, not from A's (caller-chosen) chat id."""
    conn = await asyncpg.connect(pair.a.services.database_url)
    try:
        uid = await conn.fetchval(
            "SELECT uid FROM chats WHERE id = $1 AND user_id = $2", chat_id, user
        )
    finally:
        await conn.close()
    assert uid is not None
    async with httpx.AsyncClient(base_url=pair.b.api_url, timeout=30) as b:
        headers = {"x-api-key": pair.service_key}
        chat = await b.get(
            f"/api/copilot/chats/{upstream_chat_id(uid)}",
            params={"userId": user},
            headers=headers,
        )
        assert chat.status_code == 200, chat.text
        body: dict[str, Any] = chat.json()
        return body


async def _b_events(pair: Pair, user: str, run_id: str) -> list[dict[str, Any]]:
    async with (
        httpx.AsyncClient(base_url=pair.b.api_url, timeout=30) as b,
        b.stream(
            "GET",
            f"/api/copilot/runs/{run_id}/events",
            params={"userId": user},
            headers={"x-api-key": pair.service_key},
        ) as resp,
    ):
        return [f.data for f in await collect(resp)]


async def _answer_host_tool(client: httpx.AsyncClient, live: LiveRun) -> str:
    call = (await live.event("tool_call", toolName="read_sheet")).data["data"]
    assert call["id"].startswith("tc_")
    assert call["executor"] == "client"
    done = await client.post(
        "/api/tools/mark-complete",
        json={"id": call["id"], "name": "read_sheet", "status": 200, "data": {"cells": [42]}},
    )
    assert done.status_code == 200, done.text
    return str(call["id"])


async def test_chat_through_an_upstream_with_server_and_host_tools(
    pair: Pair, client_a: httpx.AsyncClient
) -> None:
    key = scenario(pair.a.provider, [*_script({"sheet": "q3"}), {"text": "again"}])
    live = await LiveRun.start(
        client_a,
        {
            "message": key,
            "model": "backend:gpt-4o-mini",
            "tools": [HOST_TOOL],
            "autoExecuteTools": True,
        },
    )
    await _answer_host_tool(client_a, live)
    frames = await live.finished()
    events = [f.data for f in frames]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["status"] == "completed"
    start = events[0]["data"]
    assert start["provider"] == "copilot-backend"
    assert live.content() == "Let me look. The sheet says 42."
    results = {e["toolName"]: e for e in events if e["type"] == "tool_result"}
    assert results["echo"]["result"] == {"echo": "ping"}  # A's own server tool ran in A
    assert results["read_sheet"]["result"] == {"cells": [42]}
    assert all(e["toolCallId"].startswith("tc_") for e in events if "toolCallId" in e)

    chat_id = start["chatId"]
    chat_a = (await client_a.get(f"/api/copilot/chats/{chat_id}")).json()
    assert chat_a["messages"][-1]["content"] == fold_events(events).content
    # B: the same chat, its run paused on both tools and got A's results by mark-complete.
    chat_b = await _b_run(pair, DEV_USER, chat_id)
    b_run = chat_b["messages"][-1]["runId"]
    b_events = await _b_events(pair, DEV_USER, b_run)
    b_results = {e["toolName"]: e["result"] for e in b_events if e["type"] == "tool_result"}
    assert b_results == {"echo": {"echo": "ping"}, "read_sheet": {"cells": [42]}}
    assert b_events[-1]["data"]["status"] == "completed"

    # A's run took the upstream path (reader signals, outbox updates, local-activity patches):
    # it replays under the full sandbox, and is kept as a recorded history when asked.
    temporal = await Client.connect(pair.a.services.temporal_address)
    history = await temporal.get_workflow_handle(live.run_id).fetch_history()
    replayer = Replayer(workflows=[ChatWorkflow], workflow_runner=workflow_runner(strict=True))
    await replayer.replay_workflow(history)
    if os.environ.get("RECORD_HISTORIES"):
        (HISTORIES / "backend-patched.json").write_text(history.to_json())

    # The next message continues B's conversation (B's responseId comes back as conversationId).
    # (the fake provider answers from the first scenario key in the chat: its third turn)
    live2 = await LiveRun.start(
        client_a, {"message": "and now?", "chatId": chat_id, "model": "backend:gpt-4o-mini"}
    )
    await live2.finished()
    assert live2.content() == "again"
    b_runs = [m for m in (await _b_run(pair, DEV_USER, chat_id))["messages"] if m["role"] == "user"]
    assert len(b_runs) == 2
    b_starts = [(await _b_events(pair, DEV_USER, m["runId"]))[0] for m in b_runs]
    assert b_starts[0]["data"]["responseId"] == b_starts[1]["data"]["responseId"]


async def test_upstream_refusing_our_key_fails_the_run_clearly(
    services: Services, fake_provider: FakeProviderServer, pair: Pair
) -> None:
    with running_stack(
        services,
        fake_provider,
        COPILOT_BACKEND_URL=pair.b.api_url,
        COPILOT_BACKEND_API_KEY="sk-copilot-wrong",
    ) as a:
        async with httpx.AsyncClient(base_url=a.api_url, timeout=60) as c:
            live = await LiveRun.start(c, {"message": "hi", "model": "backend:x"})
            frames = await live.finished()
    error = next(f.data for f in frames if f.data["type"] == "error")
    assert "COPILOT_BACKEND_API_KEY" in error["data"]["message"]
    assert frames[-1].data["data"]["status"] == "failed"


async def test_worker_killed_mid_stream_runs_and_reports_each_tool_once(
    pair: Pair, client_a: httpx.AsyncClient
) -> None:
    key = scenario(pair.a.provider, _script({"sheet": "kill"}))
    live = await LiveRun.start(
        client_a,
        {
            "message": key,
            "model": "backend:gpt-4o-mini",
            "tools": [HOST_TOOL],
            "autoExecuteTools": True,
        },
    )
    # The reader is mid-stream: B waits for read_sheet, which A's host has not answered yet.
    await live.event("tool_call", toolName="read_sheet")
    await live.event("tool_result", toolName="echo")
    os.kill(pair.a.worker.proc.pid, signal.SIGKILL)
    pair.a.worker.proc.wait(10)
    pair.a.worker = pair.a.spawn_worker("worker-a2")
    await _answer_host_tool(client_a, live)
    frames = await live.finished(timeout=90)
    events = [f.data for f in frames]
    assert events[-1]["data"]["status"] == "completed"
    assert "turn_reset" in [e["type"] for e in events]
    assert fold_events(events).content == "Let me look. The sheet says 42."
    assert Counter(e["toolName"] for e in events if e["type"] == "tool_call") == {
        "echo": 1,
        "read_sheet": 1,
    }

    temporal = await Client.connect(pair.a.services.temporal_address)
    history = await temporal.get_workflow_handle(live.run_id).fetch_history()
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    )
    assert scheduled["execute_server_tool"] == 1
    assert scheduled["report_backend_tool"] == 2  # echo and read_sheet, once each
    chat_b = await _b_run(pair, DEV_USER, events[0]["data"]["chatId"])
    assert len([m for m in chat_b["messages"] if m["role"] == "user"]) == 1  # resumed, not rerun
    b_events = await _b_events(pair, DEV_USER, chat_b["messages"][-1]["runId"])
    assert Counter(e["toolName"] for e in b_events if e["type"] == "tool_result") == {
        "echo": 1,
        "read_sheet": 1,
    }


async def test_abort_while_the_upstream_waits_for_a_confirmation(
    pair: Pair, client_a: httpx.AsyncClient
) -> None:
    key = scenario(pair.a.provider, _script({"sheet": "abort"}))
    tool = {**HOST_TOOL, "requiresConfirmation": True}
    live = await LiveRun.start(
        client_a, {"message": key, "model": "backend:gpt-4o-mini", "tools": [tool]}
    )
    waiting = await live.event("tool_status", status="awaiting_confirmation")
    snapshot = (await client_a.get(f"/api/copilot/runs/{live.run_id}")).json()
    assert [p["id"] for p in snapshot["pending"]] == [waiting.data["toolCallId"]]
    assert (await client_a.post(f"/api/copilot/runs/{live.run_id}/abort")).status_code == 200
    events = [f.data for f in await live.finished()]
    assert events[-1]["data"]["status"] == "aborted"
    assert {"toolCallId": waiting.data["toolCallId"], "status": "cancelled"}.items() <= next(
        e for e in reversed(events) if e.get("toolCallId") == waiting.data["toolCallId"]
    ).items()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    temporal = await Client.connect(pair.a.services.temporal_address)
    history = await temporal.get_workflow_handle(live.run_id).fetch_history()
    reported = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "report_backend_tool"
    ]
    assert len(reported) == 1  # echo ran and was reported; the undecided call was not
