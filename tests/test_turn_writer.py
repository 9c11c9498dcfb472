"""The streaming writer against real Redis: deltas that arrive while an append is in flight go
out together, in order, gapless; a fenced writer's failure is raised, never dropped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from temporalio.testing import ActivityEnvironment

from activities.writer import TurnWriter
from copilot.events.log import NOTIFY_KEY, EventLog, WriterFenced, stream_key
from copilot.events.model import Content
from copilot.types import StreamTurnInput
from tests.conftest import Services


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[Redis]:
    client = Redis.from_url(services.redis_url)
    yield client
    await client.aclose()


def _input(run_id: str) -> StreamTurnInput:
    return StreamTurnInput(
        run_id=run_id, chat_id="c", tenant_id="t", user_id="u", model="m", provider="openai",
        turn=1, seq_start=1, writer_gen=1,
    )  # fmt: skip


async def _notices_for(redis: Redis, run_id: str) -> int:
    entries = await redis.xrange(NOTIFY_KEY)
    key = stream_key(run_id).encode()
    return sum(1 for _, fields in entries if fields.get(b"r") == key)


async def test_deltas_queued_behind_an_append_go_out_together_in_order(redis: Redis) -> None:
    run_id = f"r-{uuid.uuid4().hex}"
    log = EventLog(redis, retention_s=60)
    env = ActivityEnvironment()

    async def stream() -> TurnWriter:
        writer = TurnWriter(log, _input(run_id), attempt=1)
        for i in range(200):  # faster than any append: they queue behind the first
            writer.write_soon([Content(f"t{i} ", 1)], text=f"t{i} ")
        await writer.write([Content("end", 1)], text="end")  # waits for the queue first
        return writer

    writer = await env.run(stream)
    entries = await log.read_after(run_id, 0, count=1000)
    assert [e.seq for e in entries] == list(range(1, 202))
    assert [e.event["data"] for e in entries] == [f"t{i} " for i in range(200)] + ["end"]
    assert writer.next_seq == 202
    appends = await _notices_for(redis, run_id)
    assert appends <= 10, f"{appends} appends for 201 events: the queue did not coalesce"


async def test_a_fenced_writer_raises_instead_of_dropping_queued_deltas(redis: Redis) -> None:
    run_id = f"r-{uuid.uuid4().hex}"
    log = EventLog(redis, retention_s=60)

    async def stream() -> None:
        old = TurnWriter(log, _input(run_id), attempt=1)
        await old.write([Content("a", 1)], text="a")
        await log.claim(run_id, old.epoch + 1)  # a newer attempt takes the log over
        old.write_soon([Content("b", 1)], text="b")
        with pytest.raises(WriterFenced):
            await old.drain()
        with pytest.raises(WriterFenced):
            old.write_soon([Content("c", 1)], text="c")

    await ActivityEnvironment().run(stream)
    assert [e.event["data"] for e in await log.read_after(run_id, 0)] == ["a"]
