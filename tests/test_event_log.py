"""The event log against real Redis: idempotent writes, fencing, replay; the hub."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from copilot.events.hub import LogHub, Subscription
from copilot.events.log import (
    NOTIFY_COUNT_KEY,
    NOTIFY_KEY,
    EventLog,
    WriterFenced,
    encode_frame,
    stream_key,
    writer_epoch,
)
from tests.conftest import Services


@pytest.fixture
async def log(services: Services) -> AsyncIterator[EventLog]:
    redis = Redis.from_url(services.redis_url)
    yield EventLog(redis, retention_s=60)
    await redis.aclose()


def _ev(seq: int, kind: str = "content", **extra: object) -> dict[str, object]:
    return {"type": kind, "seq": seq, "runId": "r", **extra}


async def test_a_retried_write_never_lands_twice(log: EventLog) -> None:
    run = f"r-{uuid.uuid4().hex}"
    epoch = writer_epoch(1, 1)
    await log.append(run, epoch, [_ev(1), _ev(2, data="a")])
    await log.append(run, epoch, [_ev(2, data="a"), _ev(3, data="b")])  # a retried batch
    entries = await log.read_after(run, 0)
    assert [e.seq for e in entries] == [1, 2, 3]


async def test_a_superseded_writer_is_fenced(log: EventLog) -> None:
    run = f"r-{uuid.uuid4().hex}"
    await log.append(run, writer_epoch(1, 1), [_ev(1)])
    await log.append(run, writer_epoch(1, 2), [_ev(2, "turn_reset", turn=1, attempt=2)])
    with pytest.raises(WriterFenced):
        await log.append(run, writer_epoch(1, 1), [_ev(3, data="zombie")])
    # the next activity of the run (higher seq_start) writes on
    await log.append(run, writer_epoch(3, 1), [_ev(3, "done")])
    assert [e.event["type"] for e in await log.read_after(run, 0)] == [
        "content",
        "turn_reset",
        "done",
    ]


async def test_finish_sets_retention(log: EventLog, services: Services) -> None:
    run = f"r-{uuid.uuid4().hex}"
    await log.append(run, 1000, [_ev(1, "done")])
    await log.finish(run)
    redis = Redis.from_url(services.redis_url)
    try:
        ttl = await redis.ttl(f"copilot:run:{run}:events")
    finally:
        await redis.aclose()
    assert 0 < ttl <= 60


def test_frames_carry_id_event_and_flat_data() -> None:
    frame = encode_frame({"type": "content", "seq": 7, "runId": "r", "data": "hé"})
    assert frame == (
        'id: 7\nevent: content\ndata: {"type":"content","seq":7,"runId":"r","data":"hé"}\n\n'
    )


async def test_claim_fences_the_old_writer_before_reading_the_last_seq(log: EventLog) -> None:
    run = f"r-{uuid.uuid4().hex}"
    await log.append(run, writer_epoch(1, 1), [_ev(1), _ev(2)])
    assert await log.claim(run, writer_epoch(2, 1)) == 2
    with pytest.raises(WriterFenced):  # the cancelled writer streams on: refused
        await log.append(run, writer_epoch(1, 1), [_ev(3, data="late")])
    await log.append(run, writer_epoch(3, 1), [_ev(3, "done")])
    assert [e.event["type"] for e in await log.read_after(run, 0)] == ["content"] * 2 + ["done"]


async def test_a_seq_behind_the_log_that_never_landed_is_an_error_not_a_silent_drop(
    log: EventLog,
) -> None:
    run = f"r-{uuid.uuid4().hex}"
    await log.append(run, writer_epoch(1, 1), [_ev(1), _ev(3)])
    with pytest.raises(Exception, match="SEQCONFLICT"):
        await log.append(run, writer_epoch(1, 1), [_ev(2)])


async def _next(sub: Subscription) -> int:
    entry = await sub.get(10)
    assert entry is not None, "nothing delivered"
    return entry.seq


async def test_the_hub_reads_only_the_runs_that_changed_among_many_followed(
    services: Services, log: EventLog
) -> None:
    redis = Redis.from_url(services.redis_url)
    hub = LogHub(redis, block_ms=200)
    await hub.start()
    try:
        runs = [f"r-{uuid.uuid4().hex}" for _ in range(300)]
        subs = {run: await hub.subscribe(run, 0) for run in runs}
        for run in runs[::100]:  # three of them get events
            await log.append(run, writer_epoch(1, 1), [_ev(1), _ev(2, "done")])
        for run in runs[::100]:
            assert [await _next(subs[run]), await _next(subs[run])] == [1, 2]
        assert all(subs[run].queue.empty() for run in runs if run not in runs[::100])
    finally:
        await hub.stop()
        await redis.aclose()


async def test_the_hub_reads_every_followed_run_after_a_gap_in_notices(
    services: Services, log: EventLog
) -> None:
    """Notices are hints; lost ones (trimmed while a hub lagged, or Redis lost data) show as a
    gap in their numbering, and the hub then reads every run it follows."""
    redis = Redis.from_url(services.redis_url)
    hub = LogHub(redis, block_ms=200)
    await hub.start()
    try:
        quiet, loud = f"r-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}"
        sub = await hub.subscribe(quiet, 0)
        await hub.subscribe(loud, 0)
        # An entry the hub gets no notice of, and a notice number skipped (a lost notice).
        await redis.xadd(stream_key(quiet), {"d": json.dumps(_ev(1))}, id="1-0")
        await redis.incr(NOTIFY_COUNT_KEY)
        await log.append(loud, writer_epoch(1, 1), [_ev(1)])
        assert await _next(sub) == 1
    finally:
        await hub.stop()
        await redis.aclose()


async def test_the_hub_delivers_what_a_notice_carries_without_reading_the_log(
    services: Services,
) -> None:
    """A notice carries its batch: the hub delivers it in one round trip. Shown with a notice
    whose events are in no log at all (written by hand, numbered as the append script does)."""
    redis = Redis.from_url(services.redis_url)
    hub = LogHub(redis, block_ms=200)
    await hub.start()
    try:
        run = f"r-{uuid.uuid4().hex}"
        sub = await hub.subscribe(run, 0)
        n = await redis.incr(NOTIFY_COUNT_KEY)
        carried = {"1": json.dumps(_ev(1)), "2": json.dumps(_ev(2, "done"))}
        await redis.xadd(NOTIFY_KEY, {"r": stream_key(run), "n": n, **carried})
        assert [await _next(sub), await _next(sub)] == [1, 2]
        assert await redis.exists(stream_key(run)) == 0
    finally:
        await hub.stop()
        await redis.aclose()


async def test_the_hub_reads_the_log_when_a_notice_cannot_carry_its_batch(
    services: Services, log: EventLog
) -> None:
    """A batch over the notice's size limit goes without its events, and one that does not
    follow on from the cursor (a reader that joined with an older cursor) makes the hub read
    the log: every entry arrives once, in order."""
    redis = Redis.from_url(services.redis_url)
    hub = LogHub(redis, block_ms=200)
    await hub.start()
    try:
        big, late = f"r-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}"
        big_sub = await hub.subscribe(big, 0)
        await log.append(big, writer_epoch(1, 1), [_ev(1, text="x" * 70_000), _ev(2)])
        assert [await _next(big_sub), await _next(big_sub)] == [1, 2]
        await log.append(late, writer_epoch(1, 1), [_ev(1), _ev(2)])
        late_sub = await hub.subscribe(late, 0)  # joins after 1 and 2 were noticed
        await log.append(late, writer_epoch(1, 1), [_ev(3)])
        assert [await _next(late_sub) for _ in range(3)] == [1, 2, 3]
        assert big_sub.queue.empty()
        assert late_sub.queue.empty()
    finally:
        await hub.stop()
        await redis.aclose()


async def test_a_long_log_is_read_a_page_at_a_time(log: EventLog) -> None:
    run = f"r-{uuid.uuid4().hex}"
    await log.append(run, writer_epoch(1, 1), [_ev(seq, data="x") for seq in range(1, 2501)])
    sizes, seqs = [], []
    async for batch in log.pages(run, 0, size=1000):
        sizes.append(len(batch))
        seqs += [e.seq for e in batch]
    assert sizes == [1000, 1000, 500]
    assert seqs == list(range(1, 2501))
