"""The upstream reader's outbox pump: the workflow's own events, written by the reader.

While an upstream-backend reader (``activities/upstream.py``) owns a run's event log, the
workflow cannot write it (one writer per log keeps seqs gapless), so the workflow's events
(tool_call, confirmations, results) queue in its outbox. The pump long-polls them with the
``backend_outbox`` update and writes them in order with the reader's deltas, recording how
many it wrote (the outbox mark) in the same Redis transaction.

Retries are Temporal's: a failed poll or write fails the reader's attempt, and the retried
attempt resumes after the mark the log holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.writer import TurnWriter
from copilot.types import OutboxBatch, OutboxPoll

log = logging.getLogger("copilot.backend")


async def read_and_pump(
    read: Coroutine[Any, Any, None], handle: WorkflowHandle[Any, Any], writer: TurnWriter
) -> None:
    """Read the upstream while the outbox pump writes the workflow's events; the first
    failure of either fails this attempt, and Temporal retries it (``LLM_RETRY`` in
    ``workflows/calls.py``): nothing here retries by hand.

    A failed pump cancels the read: an attempt that cannot deliver the workflow's events
    (tool_call, statuses, results) must not go on streaming past them. The pump itself is
    never cancelled, only told to stop once the read has ended, so it finishes the write it
    is in (its seqs must land or be retried). If the activity is cancelled (an abort, a
    heartbeat timeout), the read is cancelled and awaited, the pump stopped, and the
    cancellation goes on up.
    """
    stop = asyncio.Event()
    pumping = asyncio.create_task(_pump_outbox(handle, writer, writer.outbox_mark or 0, stop))
    reading = asyncio.create_task(read)
    try:
        await asyncio.wait({reading, pumping}, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done() and _failure(pumping) is not None:
            reading.cancel()
        await asyncio.wait({reading})
    except asyncio.CancelledError:
        reading.cancel()
        await asyncio.wait({reading})
        raise
    finally:
        stop.set()
        await asyncio.wait({pumping})
    pump_failed = _failure(pumping)
    if pump_failed is not None and (reading.cancelled() or reading.exception() is None):
        raise ApplicationError(
            f"the outbox pump failed: {type(pump_failed).__name__}: {pump_failed}",
            type="outbox_pump_failed",
        ) from pump_failed
    reading.result()  # the read's own failure (a ProviderError) goes up as it is


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


async def _pump_outbox(
    handle: WorkflowHandle[Any, Any], writer: TurnWriter, start: int, stop: asyncio.Event
) -> None:
    """Write the workflow's outbox into the log as it grows, until ``stop``.

    A failed poll or write ends the pump with that error (see ``read_and_pump``): the
    retried attempt starts after the outbox mark the log holds, so nothing is written twice.
    """
    after = start
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            poll = asyncio.create_task(
                handle.execute_update(
                    "backend_outbox", OutboxPoll(after=after), result_type=OutboxBatch
                )
            )
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not poll.done():
                # Stopping: the poll's answer is not wanted any more (whatever no reader
                # wrote, the workflow writes itself once the turn is over).
                poll.cancel()
                await asyncio.wait({poll})  # our own cancellation still propagates
                if not poll.cancelled() and poll.exception() is not None:
                    log.debug("abandoned outbox poll ended with %r", poll.exception())
                return
            batch = poll.result()  # a failed poll fails the pump
            if batch.events:
                await writer.write(batch.events, outbox_mark=batch.next)
            after = batch.next
            if batch.closed:
                return
    finally:
        stopping.cancel()
