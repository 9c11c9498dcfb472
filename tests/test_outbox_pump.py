"""The upstream reader's outbox pump: its failures surface, nothing retries by hand.

Unit tests of ``activities/outbox_pump.py`` (the reader and the pump side by
side), with a fake workflow handle (the long-polling ``backend_outbox`` update) and a fake
writer; the real thing runs in ``tests/test_upstream.py``. No sleeps: each step waits on
an event the other side sets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.outbox_pump import read_and_pump
from copilot.providers.base import ProviderError
from copilot.types import OutboxBatch, OutboxPoll


class FakeHandle:
    """Answers each ``backend_outbox`` poll from a queue (a batch, or an error to raise)."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[OutboxBatch | Exception] = asyncio.Queue()
        self.polls: list[int] = []
        self.polled = asyncio.Event()

    async def execute_update(self, name: str, poll: OutboxPoll, result_type: Any) -> OutboxBatch:
        assert name == "backend_outbox"
        self.polls.append(poll.after)
        self.polled.set()
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeWriter:
    def __init__(self) -> None:
        self.outbox_mark: int | None = 0
        self.written: list[dict[str, Any]] = []
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def write(self, events: list[dict[str, Any]], *, outbox_mark: int) -> None:
        self.writing.set()
        await self.release.wait()
        self.written.extend(events)
        self.outbox_mark = outbox_mark


class Reader:
    """Stands in for the upstream read: runs until told to end (or fail)."""

    def __init__(self) -> None:
        self.end = asyncio.Event()
        self.error: Exception | None = None
        self.cancelled = False

    async def __call__(self) -> None:
        try:
            await self.end.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error


def _batch(after: int, n: int, *, closed: bool = False) -> OutboxBatch:
    events = [{"type": "tool_status", "n": after + i} for i in range(n)]
    return OutboxBatch(events=events, next=after + n, closed=closed)


async def test_a_failed_poll_cancels_the_read_and_fails_the_attempt() -> None:
    handle, writer, reader = FakeHandle(), FakeWriter(), Reader()
    handle.answers.put_nowait(_batch(0, 2))
    handle.answers.put_nowait(RuntimeError("update rejected"))
    with pytest.raises(ApplicationError) as caught:
        await read_and_pump(reader(), handle, writer)  # type: ignore[arg-type]
    assert caught.value.type == "outbox_pump_failed"
    assert not caught.value.non_retryable  # Temporal retries the attempt
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert reader.cancelled
    assert handle.polls == [0, 2]  # polled once more, then gave up: no retry loop
    assert len(writer.written) == 2


async def test_the_read_ending_lets_an_in_flight_write_finish() -> None:
    handle, writer, reader = FakeHandle(), FakeWriter(), Reader()
    writer.release.clear()
    handle.answers.put_nowait(_batch(0, 3))
    task = asyncio.create_task(read_and_pump(reader(), handle, writer))  # type: ignore[arg-type]
    await writer.writing.wait()
    reader.end.set()  # the upstream's answer is complete while the pump writes
    await asyncio.wait({task}, timeout=0)
    assert not task.done()  # waits for the write, never cuts it in half
    writer.release.set()
    await task
    assert writer.outbox_mark == 3
    assert len(writer.written) == 3


async def test_a_read_failure_goes_up_as_it_is() -> None:
    handle, writer, reader = FakeHandle(), FakeWriter(), Reader()
    reader.error = ProviderError("cut mid-answer", retryable=True)
    reader.end.set()
    with pytest.raises(ProviderError):
        await read_and_pump(reader(), handle, writer)  # type: ignore[arg-type]


async def test_cancelling_the_activity_cancels_the_read_and_propagates() -> None:
    handle, writer, reader = FakeHandle(), FakeWriter(), Reader()
    task = asyncio.create_task(read_and_pump(reader(), handle, writer))  # type: ignore[arg-type]
    await handle.polled.wait()  # the pump's first poll is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reader.cancelled
