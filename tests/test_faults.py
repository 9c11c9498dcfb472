"""Fault injection. The promise: whatever crashes, a client that reconnects ends up with exactly
the answer that is persisted, having seen no event twice and missed none.

This module runs its own Temporal, PostgreSQL and Redis (it restarts them) and its own API and
worker processes (it kills them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client as TemporalClient

from copilot.embedded import (
    Child,
    Embedded,
    Ports,
    free_port,
    spawn,
    start_all,
    start_postgres,
    start_redis,
    start_temporal,
)
from copilot.events.fold import fold_events
from copilot.store.migrate import upgrade
from tests.conftest import (
    Services,
    Stack,
    provider_requests,
    running_stack,
    scenario,
    wait_healthy,
)
from tests.fakes.provider import FakeProviderServer
from tests.fakes.tools import runs_of
from tests.live import LiveRun
from tests.sse import Frame, iter_frames

pytestmark = pytest.mark.slow


@dataclass
class Own:
    services: Services
    ports: Ports
    stack: Stack


@pytest.fixture(scope="module")
def own(fake_provider: FakeProviderServer) -> Iterator[Own]:
    data_dir = Path(tempfile.mkdtemp(prefix="copilot-faults-"))
    ports = Ports(temporal=free_port(), temporal_ui=free_port(), postgres=free_port(),
                  redis=free_port())  # fmt: skip
    emb = start_all(data_dir, ports, headless=True)
    assert emb.database_url is not None
    assert emb.redis_url is not None
    assert emb.temporal_address is not None
    upgrade(emb.database_url)
    services = Services(emb.database_url, emb.redis_url, emb.temporal_address, data_dir, emb)
    try:
        with running_stack(services, fake_provider) as stack:
            yield Own(services, ports, stack)
    finally:
        emb.stop()


def _child(emb: Embedded, name: str) -> Child:
    return next(c for c in emb.children if c.name == name)


def _replace(emb: Embedded, name: str, new: Child) -> None:
    emb.children = [new if c.name == name else c for c in emb.children]


class Client:
    """A browser-like client: follows a run, reconnects with Last-Event-ID when cut."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.frames: list[Frame] = []
        self.reconnects = 0

    @property
    def last_id(self) -> int:
        return self.frames[-1].id or 0 if self.frames else 0

    async def start(self, body: dict[str, Any], *, stop_after: int) -> str:
        async with (
            httpx.AsyncClient(base_url=self.base_url, timeout=60) as http,
            http.stream("POST", "/api/copilot/chat", json=body) as resp,
        ):
            assert resp.status_code == 200
            run_id = resp.headers["x-run-id"]
            async for frame in iter_frames(resp):
                self.frames.append(frame)
                if len(self.frames) >= stop_after:
                    break
        return run_id

    async def follow(
        self, run_id: str, *, base_url: str | None = None, deadline: float = 90
    ) -> None:
        """Rejoin until ``done``, reconnecting after any cut (as EventSource does)."""

        async def loop() -> None:
            while not self.frames or self.frames[-1].data["type"] != "done":
                try:
                    async with (
                        httpx.AsyncClient(base_url=base_url or self.base_url, timeout=60) as http,
                        http.stream("GET", f"/api/copilot/runs/{run_id}/events",
                                    headers={"Last-Event-ID": str(self.last_id)}) as resp,
                    ):  # fmt: skip
                        if resp.status_code != 200:
                            raise httpx.HTTPError(f"status {resp.status_code}")
                        async for frame in iter_frames(resp):
                            self.frames.append(frame)
                            if frame.data["type"] == "done":
                                return
                except httpx.HTTPError:
                    self.reconnects += 1
                    await asyncio.sleep(0.2)  # EventSource's reconnection delay

        await asyncio.wait_for(loop(), deadline)

    def check(self) -> None:
        ids = [f.id for f in self.frames]
        assert len(ids) == len(set(ids)), "an event was seen twice"
        for prev, cur in zip(self.frames, self.frames[1:], strict=False):
            jump = (cur.id or 0) - (prev.id or 0)
            assert jump == 1 or cur.data["type"] == "snapshot", f"silent gap {prev.id}->{cur.id}"

    def folded(self) -> Any:
        return fold_events(f.data for f in self.frames)


async def _persisted(services: Services, run_id: str) -> tuple[str, int]:
    conn = await asyncpg.connect(services.database_url)
    try:
        rows = await conn.fetch(
            "SELECT content FROM messages WHERE run_id = $1 AND role = 'assistant'", run_id
        )
    finally:
        await conn.close()
    return (rows[0]["content"] if rows else ""), len(rows)


async def _assert_promise(own: Own, client: Client, run_id: str, expected: str) -> None:
    client.check()
    folded = client.folded()
    assert folded.status == "completed", client.frames[-3:]
    persisted, count = await _persisted(own.services, run_id)
    assert count == 1
    assert persisted == expected
    trace = [(f.id, f.data["type"], f.data.get("data") if f.data["type"] == "content" else "")
             for f in client.frames[:20]]  # fmt: skip
    assert folded.content == persisted, f"run {run_id}: {trace}"


def _slow(text_words: int, delay_ms: int = 40) -> dict[str, Any]:
    return {"chunks": [f"w{i} " for i in range(text_words)], "delay_ms": delay_ms}


EXPECTED = "".join(f"w{i} " for i in range(60))


async def test_1_worker_killed_mid_stream(own: Own) -> None:
    key = scenario(own.stack.provider, [_slow(60), _slow(60, 10)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=8)
    os.kill(own.stack.worker.proc.pid, signal.SIGKILL)
    own.stack.worker.proc.wait(10)
    own.stack.worker = own.stack.spawn_worker("worker-2")
    await client.follow(run_id)
    assert "turn_reset" in [f.data["type"] for f in client.frames]
    await _assert_promise(own, client, run_id, EXPECTED)


async def test_2_api_killed_mid_sse_client_moves_to_another_api(own: Own) -> None:
    key = scenario(own.stack.provider, [_slow(60)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=6)
    port = free_port()
    other = own.stack.spawn_api(port, "api-2")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", other)
        os.kill(own.stack.api.proc.pid, signal.SIGKILL)
        own.stack.api.proc.wait(10)
        await client.follow(run_id, base_url=f"http://127.0.0.1:{port}")
        await _assert_promise(own, client, run_id, EXPECTED)
    finally:
        own.stack.api.proc.wait(10)
        new_port = int(own.stack.api_url.rsplit(":", 1)[1])
        own.stack.api = own.stack.spawn_api(new_port, "api-restarted")
        wait_healthy(own.stack.api_url, own.stack.api)
        other.stop()


@pytest.mark.parametrize("keep_data", [True, False], ids=["with-aof", "data-lost"])
async def test_3_redis_restarted_mid_run(own: Own, keep_data: bool) -> None:
    key = scenario(own.stack.provider, [_slow(60, 50), _slow(60, 20), _slow(60, 20)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=8)
    emb = own.services.embedded
    redis = _child(emb, "redis")
    redis.stop()
    if not keep_data:
        shutil.rmtree(own.services.data_dir / "redis")
    child, _ = await asyncio.to_thread(start_redis, own.services.data_dir, own.ports.redis)
    _replace(emb, "redis", child)
    await client.follow(run_id)
    await _assert_promise(own, client, run_id, EXPECTED)
    if not keep_data:
        assert "snapshot" in [f.data["type"] for f in client.frames]


async def test_4_postgres_down_at_the_final_write(own: Own) -> None:
    key = scenario(own.stack.provider, [_slow(60, 60)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=5)
    emb = own.services.embedded
    _child(emb, "postgres").stop()
    # the answer finishes streaming while PostgreSQL is down: wait for its last delta in Redis
    await _wait_for_last_delta(own, run_id, "w59 ")
    child, _ = await asyncio.to_thread(start_postgres, own.services.data_dir, own.ports.postgres)
    _replace(emb, "postgres", child)
    await client.follow(run_id)
    await _assert_promise(own, client, run_id, EXPECTED)


async def _wait_for_last_delta(own: Own, run_id: str, text: str) -> None:
    from redis.asyncio import Redis

    from copilot.events.log import EventLog

    redis = Redis.from_url(own.services.redis_url)
    log = EventLog(redis, retention_s=60)
    try:
        async with asyncio.timeout(60):
            while True:
                entries = await log.read_after(run_id, 0)
                if any(e.event.get("data") == text for e in entries):
                    return
                await asyncio.sleep(0.1)  # polling the log for the writer's progress
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "first",
    [
        {"cut_after": 5, "chunks": [f"w{i} " for i in range(60)]},
        {"malformed_after": 4, "chunks": [f"w{i} " for i in range(60)]},
        {"error": 429, "retry_after": 0},
        {"error": 500},
    ],
    ids=["cut", "malformed", "429", "500"],
)
async def test_5_provider_failures_are_retried_consistently(
    own: Own, first: dict[str, Any]
) -> None:
    key = scenario(own.stack.provider, [first, _slow(60, 5)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=2)
    await client.follow(run_id)
    await _assert_promise(own, client, run_id, EXPECTED)
    if "cut_after" in first or "malformed_after" in first:
        assert "turn_reset" in [f.data["type"] for f in client.frames]


async def test_6_a_disconnected_client_does_not_cancel_the_run(own: Own) -> None:
    key = scenario(own.stack.provider, [_slow(60, 20)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=4)
    # the client is gone; the run goes on to the end without it
    persisted = ""
    async with asyncio.timeout(60):
        while not persisted:
            persisted, _ = await _persisted(own.services, run_id)
            await asyncio.sleep(0.1)  # polling PostgreSQL for the run's final write
    await client.follow(run_id)
    await _assert_promise(own, client, run_id, EXPECTED)


async def test_7_temporal_restarted_mid_run(own: Own) -> None:
    key = scenario(own.stack.provider, [_slow(60, 60), _slow(60, 20)])
    client = Client(own.stack.api_url)
    run_id = await client.start({"message": key}, stop_after=6)
    emb = own.services.embedded
    _child(emb, "temporal").stop()
    child, _, _ = await asyncio.to_thread(
        start_temporal, own.services.data_dir, own.ports.temporal, own.ports.temporal_ui,
        headless=True,
    )  # fmt: skip
    _replace(emb, "temporal", child)
    await client.follow(run_id, deadline=120)
    await _assert_promise(own, client, run_id, EXPECTED)


async def _activity_identities(own: Own, run_id: str) -> list[tuple[int, str]]:
    """(attempt, worker identity) of each finished LLM turn in the run's history (a started
    event is written when its attempt ends, so only the last attempt's is there)."""
    temporal = await TemporalClient.connect(own.services.temporal_address)
    history = await temporal.get_workflow_handle(run_id).fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    return [
        (e.activity_task_started_event_attributes.attempt,
         e.activity_task_started_event_attributes.identity)
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id]
        == "stream_llm_turn"
    ]  # fmt: skip


async def _streaming_turn(own: Own, run_id: str) -> tuple[int, str]:
    """(attempt, worker identity) of the LLM turn the run is streaming now."""
    temporal = await TemporalClient.connect(own.services.temporal_address)
    described = await temporal.get_workflow_handle(run_id).describe()
    pending = [p for p in described.raw_description.pending_activities
               if p.activity_type.name == "stream_llm_turn"]  # fmt: skip
    assert len(pending) == 1, pending
    return pending[0].attempt, pending[0].last_worker_identity


async def test_8_api_with_its_own_worker_killed_mid_stream(own: Own) -> None:
    """API_WORKER=true: the run starts eagerly and its LLM turn streams inside the API
    process. Killing that API loses the turn; the dedicated worker retries it and the client,
    moved to another API, gets exactly the persisted answer."""
    key = scenario(own.stack.provider, [_slow(60), _slow(60, 10)])
    port = free_port()
    eager = spawn("api-eager", [sys.executable, "-m", "copilot.cli", "api", "--port", str(port)],
                  log_path=own.stack.log_dir / "api-eager.log",
                  env={**own.stack.env, "API_WORKER": "true"})  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", eager)
        client = Client(f"http://127.0.0.1:{port}")
        run_id = await client.start({"message": key}, stop_after=6)
        attempt, identity = await _streaming_turn(own, run_id)
        assert attempt == 1
        assert identity.startswith(f"{eager.proc.pid}@"), identity
        os.kill(eager.proc.pid, signal.SIGKILL)
        eager.proc.wait(10)
        await client.follow(run_id, base_url=own.stack.api_url)
    finally:
        eager.stop()
    assert "turn_reset" in [f.data["type"] for f in client.frames]
    await _assert_promise(own, client, run_id, EXPECTED)
    retried = await _activity_identities(own, run_id)
    assert retried[-1][0] == 2
    assert retried[-1][1].startswith(f"{own.stack.worker.proc.pid}@"), retried


async def _until(pred: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll a condition another process makes true (a file it writes), with a deadline."""
    try:
        async with asyncio.timeout(deadline_s):
            while True:
                if pred():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} within {deadline_s}s") from None


@pytest.mark.parametrize("tool", ["slow_idempotent", "slow_once"])
async def test_9_worker_killed_while_a_server_tool_runs(
    own: Own, tool: str, tmp_path: Path
) -> None:
    """A worker SIGKILLed 1 s into a 4 s tool: the crash is noticed at the tool heartbeat
    timeout (seconds, not CLIENT_TOOL_TIMEOUT) and the run goes on within 15 s. An idempotent
    tool runs again; a non-idempotent one does not, and its outcome says so to the model and
    the client."""
    tool_log = tmp_path / "tools.log"
    mark = uuid.uuid4().hex[:8]
    with running_stack(own.services, own.stack.provider, EXTRA_TOOL_MODULES="tests.fakes.tools",
                       FAKE_TOOL_LOG=str(tool_log)) as stack:  # fmt: skip
        key = scenario(stack.provider, [
            {"tool_calls": [{"name": tool, "arguments": {"ms": 4000, "mark": mark}}]},
            {"text": "after the tool"},
        ])  # fmt: skip
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
            live = await LiveRun.start(http, {"message": key, "autoExecuteTools": True})
            await _until(lambda: runs_of(tool_log, mark)[0] == 1, 30, "the tool never started")
            await asyncio.sleep(1.0)  # the fault: one second into the four-second tool
            os.kill(stack.worker.proc.pid, signal.SIGKILL)
            stack.worker.proc.wait(10)
            stack.worker = stack.spawn_worker("worker-2")
            if tool == "slow_idempotent":
                await _until(lambda: runs_of(tool_log, mark)[0] == 2, 15, "not run again")
                outcome = await live.event("tool_result", timeout=15)
                assert outcome.data["result"] == {"sleptMs": 4000}
            else:
                outcome = await live.event("tool_error", timeout=15)
                error = outcome.data["data"]["error"]
                assert "interrupted" in error
                assert "may or may not have taken effect" in error
            await live.finished()
            await live.close()
        assert live.frames[-1].data["data"]["status"] == "completed"
        assert live.content() == "after the tool"
        starts, ends = runs_of(tool_log, mark)
        assert (starts, ends) == ((2, 1) if tool == "slow_idempotent" else (1, 0))
        seen = await provider_requests(stack.provider, key)
        told = json.dumps(seen[-1]["body"])
        assert ("sleptMs" in told) if tool == "slow_idempotent" else ("interrupted" in told)
